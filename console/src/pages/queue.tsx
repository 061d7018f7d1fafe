import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, gql, live, type Viewer } from '../api';
import { ErrorBox, excerpt, Explanation, LongText, prefetch, safeHref, SentimentBadge, timeLeft, useQuery, when, type Label } from '../components/ui';

interface Item {
  id: string;
  intent: string;
  channel: string;
  department: string;
  status: string;
  dueAt: string;
  overdue: boolean;
  urgency: number;
  assignedUser: string | null;
  sentimentScore: number;
  openedAt: string;
  interaction: { id: string; text: string; occurredAt: string } | null;
  lastInteraction: { id: string; text: string; occurredAt: string; source: string } | null;
  customer: { id: string; displayName: string | null } | null;
}

interface ThreadMessage {
  id: string;
  text: string;
  occurredAt: string;
  direction?: string;
  sentiment?: { label: Label; score: number; explanation: { token: string; weight: number }[] };
}

export const QUEUE = `query Queue($department: String, $channel: String) {
  openItems(first: 50, department: $department, channel: $channel) {
    totalCount
    edges { node {
      id intent channel department status dueAt overdue urgency assignedUser sentimentScore openedAt
      interaction { id text occurredAt }
      lastInteraction { id text occurredAt source }
      customer { id displayName }
    } }
  }
  topics { department }
}`;

const ITEM_CUSTOMER = `query ItemCustomer($id: ID!) {
  customer(id: $id) {
    id displayName
    sentiment { score label trend interactionCount lastInteractionAt }
    crmRecords { system objectType externalId url }
    interactions(first: 8) { edges { node {
      id occurredAt direction source text
      sentiment { label score explanation { token weight } }
    } } }
  }
}`;

const CHANGED = `subscription Changed($department: String) { listeningItemChanged(department: $department) { id status } }`;

/** The queue's first query with the page's initial filters, started before sign-in is confirmed. */
export function prefetchQueue(): void {
  prefetch(QUEUE, { department: null, channel: null });
}

export function QueuePage({ viewer }: { viewer: Viewer }) {
  const [department, setDepartment] = useState('');
  const [channel, setChannel] = useState('');
  const [assignee, setAssignee] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [announce, setAnnounce] = useState('');
  const [now, setNow] = useState(Date.now());
  const vars = { department: department || null, channel: channel || null };
  const q = useQuery<{ openItems: { totalCount: number; edges: { node: Item }[] }; topics: { department: string }[] }>(QUEUE, vars);

  // SLA countdowns move without a reload
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(t);
  }, []);

  // live: any change to an item of this department (another agent, a reply, a new complaint) reloads the list
  const reloadRef = useRef(q.reload);
  reloadRef.current = q.reload;
  // (and, once a lost connection is back, once more: what changed meanwhile sent no event here)
  const [online, setOnline] = useState(true);
  useEffect(() => {
    let pending: ReturnType<typeof setTimeout> | null = null;
    const stop = live(
      CHANGED,
      { department: department || null },
      () => {
        if (!pending)
          pending = setTimeout(() => {
            pending = null;
            void reloadRef.current();
          }, 250);
      },
      setOnline,
    );
    return () => {
      stop();
      if (pending) clearTimeout(pending);
    };
  }, [department]);

  const items = useMemo(() => {
    const all = q.data?.openItems.edges.map((e) => e.node) ?? [];
    const a = assignee.trim().toLowerCase();
    return a ? all.filter((i) => (i.assignedUser ?? '').toLowerCase().includes(a)) : all;
  }, [q.data, assignee]);

  // a count change is announced to screen readers without moving focus
  const lastCount = useRef<number | null>(null);
  useEffect(() => {
    if (!q.data) return;
    const n = q.data.openItems.totalCount;
    if (lastCount.current !== null && n !== lastCount.current) setAnnounce(`${n} open items (${n > lastCount.current ? 'new items arrived' : 'items left the queue'})`);
    lastCount.current = n;
  }, [q.data]);

  const departments = [...new Set((q.data?.topics ?? []).map((t) => t.department))].sort();
  const channels = [...new Set(items.map((i) => i.channel).concat(channel ? [channel] : []))].sort();
  const current = items.find((i) => i.id === selected) ?? null;

  return (
    <div class="queue">
      <h1>Queue</h1>
      <p class="sr-only" aria-live="polite" data-testid="announce">
        {announce}
      </p>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter the queue">
        <label>
          Department
          <select value={department} onChange={(e) => setDepartment(e.currentTarget.value)}>
            <option value="">all</option>
            {departments.map((d) => (
              <option value={d}>{d}</option>
            ))}
          </select>
        </label>
        <label>
          Channel
          <select value={channel} onChange={(e) => setChannel(e.currentTarget.value)}>
            <option value="">all</option>
            {channels.map((c) => (
              <option value={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Assignee
          <input type="search" value={assignee} placeholder="anyone" onInput={(e) => setAssignee(e.currentTarget.value)} />
        </label>
      </form>
      <p role="status" class="live-status" data-testid="live-status">
        {!online && 'Connection lost: reconnecting… The queue will catch up when it is back.'}
      </p>
      <ErrorBox error={q.error} />
      <div class="split">
        <section aria-labelledby="open-items" class="card list">
          <h2 id="open-items">
            Open items <span class="count" data-testid="open-count">{q.data ? q.data.openItems.totalCount : '…'}</span>
          </h2>
          {q.data && items.length === 0 && <p class="muted">Nothing waiting. Well done.</p>}
          {q.data && q.data.openItems.totalCount > q.data.openItems.edges.length && (
            <p class="muted" data-testid="queue-shown">
              Showing the {q.data.openItems.edges.length} most urgent of {q.data.openItems.totalCount}; choose a department or channel to see others.
            </p>
          )}
          <ol class="items" data-testid="queue-list">
            {items.map((i) => (
              <li key={i.id} data-item-id={i.id} class={i.id === selected ? 'selected' : ''}>
                <button class="item" aria-pressed={i.id === selected} onClick={() => setSelected(i.id)}>
                  <span class={`intent ${i.intent.toLowerCase()}`}>{i.intent.replace('_', ' ').toLowerCase()}</span>
                  <span class={i.overdue ? 'due overdue' : 'due'}>{timeLeft(i.dueAt, now)}</span>
                  <span class="who" dir="auto">
                    {i.customer?.displayName ?? 'unknown customer'}
                  </span>
                  <span class="meta">
                    <bdi>{i.department}</bdi> · {i.channel}
                    {i.assignedUser && (
                      <>
                        {' · '}
                        <bdi>{i.assignedUser}</bdi>
                      </>
                    )}
                  </span>
                  <span class="excerpt" dir="auto">
                    {excerpt((i.lastInteraction ?? i.interaction)?.text ?? '', 140)}
                  </span>
                </button>
              </li>
            ))}
          </ol>
        </section>
        {current ? (
          <ItemPanel
            key={current.id}
            item={current}
            departments={departments}
            viewer={viewer}
            onDone={(message) => {
              setSelected(null);
              setAnnounce(message);
              void q.reload();
            }}
            onChanged={() => void q.reload()}
          />
        ) : (
          <section class="card detail muted" aria-label="Item">
            <p>Choose an item to read its thread and act on it.</p>
          </section>
        )}
      </div>
    </div>
  );
}

function ItemPanel({
  item,
  departments,
  viewer,
  onDone,
  onChanged,
}: {
  item: Item;
  departments: string[];
  viewer: Viewer;
  onDone: (message: string) => void;
  onChanged: () => void;
}) {
  const c = useQuery<{
    customer: {
      id: string;
      displayName: string | null;
      sentiment: { score: number | null; label: Label | null; trend: number | null; interactionCount: number };
      crmRecords: { system: string; objectType: string; externalId: string; url: string | null }[];
      interactions: {
        edges: { node: { id: string; occurredAt: string; direction: string; source: string; text: string; sentiment: { label: Label; score: number; explanation: { token: string; weight: number }[] } } }[];
      };
    } | null;
  }>(ITEM_CUSTOMER, { id: item.customer?.id ?? '' }, !item.customer);
  const [reason, setReason] = useState('');
  const [assignTo, setAssignTo] = useState(item.assignedUser ?? '');
  const [assignDept, setAssignDept] = useState(item.department);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const act = async (query: string, variables: Record<string, unknown>, done?: string) => {
    setBusy(true);
    setError(null);
    try {
      await gql(query, variables);
      if (done) onDone(done);
      else onChanged();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const customer = c.data?.customer;
  const opening = item.lastInteraction ?? item.interaction;
  const thread: ThreadMessage[] = customer?.interactions.edges.map((e) => e.node) ?? (opening ? [opening] : []);
  return (
    <section class="card detail" aria-labelledby="item-title" data-testid="item-panel">
      <h2 id="item-title">
        {item.intent.replace('_', ' ').toLowerCase()} from <bdi>{customer?.displayName ?? item.customer?.displayName ?? 'an unknown customer'}</bdi>
      </h2>
      <dl class="facts">
        <dt>Opened</dt>
        <dd>{when(item.openedAt)}</dd>
        <dt>Due</dt>
        <dd>{when(item.dueAt)}</dd>
        <dt>Department</dt>
        <dd dir="auto">{item.department}</dd>
        <dt>Channel</dt>
        <dd>{item.channel}</dd>
        {customer && (
          <>
            <dt>Customer sentiment</dt>
            <dd>
              <SentimentBadge label={customer.sentiment.label} score={customer.sentiment.score} />{' '}
              <a href={`#/customers/${encodeURIComponent(customer.id)}`}>open customer</a>
            </dd>
            <dt>CRM</dt>
            <dd>
              {customer.crmRecords.length === 0
                ? 'not linked'
                : customer.crmRecords.map((r) =>
                    safeHref(r.url) ? (
                      <a href={safeHref(r.url)!} target="_blank" rel="noreferrer noopener">
                        {r.system.toLowerCase()} {r.objectType}
                      </a>
                    ) : (
                      <span>
                        {r.system.toLowerCase()} <bdi>{r.objectType}</bdi> <bdi>{r.externalId}</bdi>
                      </span>
                    ),
                  )}
            </dd>
          </>
        )}
      </dl>
      <h3>Thread</h3>
      <ErrorBox error={c.error} />
      <ol class="thread">
        {thread.map((m) => (
          <li class={m.direction === 'OUTBOUND' ? 'out' : 'in'}>
            <LongText text={m.text} />
            <p class="meta">
              {when(m.occurredAt)}
              {m.sentiment && (
                <>
                  {' '}
                  · <SentimentBadge label={m.sentiment.label} score={m.sentiment.score} />
                </>
              )}
            </p>
            {m.sentiment && <Explanation items={m.sentiment.explanation} />}
          </li>
        ))}
      </ol>
      <h3>Act</h3>
      <ErrorBox error={error} />
      <div class="actions">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(`mutation Assign($id: ID!, $user: String, $department: String) { assignItem(id: $id, user: $user, department: $department) { id } }`, {
              id: item.id,
              user: assignTo.trim() || null,
              department: assignDept || null,
            });
          }}
        >
          <label>
            Assign to
            <input value={assignTo} onInput={(e) => setAssignTo(e.currentTarget.value)} placeholder={viewer.id} />
          </label>
          <label>
            Department
            <select value={assignDept} onChange={(e) => setAssignDept(e.currentTarget.value)}>
              {[...new Set([item.department, ...departments])].map((d) => (
                <option value={d}>{d}</option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={busy}>
            Assign
          </button>
        </form>
        <button disabled={busy} onClick={() => void act(`mutation Responded($id: ID!) { markResponded(id: $id) { id status } }`, { id: item.id }, 'Marked as responded')}>
          Mark responded
        </button>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(`mutation Close($id: ID!, $reason: String!) { closeItem(id: $id, reason: $reason) { id status } }`, { id: item.id, reason: reason.trim() }, 'Item closed');
          }}
        >
          <label>
            Close reason
            <input required value={reason} onInput={(e) => setReason(e.currentTarget.value)} placeholder="e.g. refunded by phone" />
          </label>
          <button type="submit" disabled={busy || reason.trim() === ''}>
            Close
          </button>
        </form>
      </div>
    </section>
  );
}

