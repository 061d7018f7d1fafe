import { useState } from 'preact/hooks';
import { ApiError, gql, type Viewer } from '../api';
import { TrendChart } from '../components/chart';
import { ErrorBox, Explanation, LongText, safeHref, Section, SentimentBadge, useQuery, when, type Label } from '../components/ui';

const SEARCH = `query Customers($search: String) {
  customers(first: 25, filter: { search: $search }) {
    totalCount
    edges { node {
      id displayName createdAt
      sentiment { label score lastInteractionAt interactionCount }
      identities { kind value redacted }
    } }
  }
}`;

interface CustomerRow {
  id: string;
  displayName: string | null;
  createdAt: string;
  sentiment: { label: Label | null; score: number | null; lastInteractionAt: string | null; interactionCount: number };
  identities: { kind: string; value: string | null; redacted: boolean }[];
}

export function CustomersPage({ viewer }: { viewer: Viewer }) {
  const [text, setText] = useState('');
  const [search, setSearch] = useState('');
  const q = useQuery<{ customers: { totalCount: number; edges: { node: CustomerRow }[] } }>(SEARCH, { search: search || null });
  return (
    <div>
      <h1>Customers</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setSearch(text.trim());
        }}
      >
        <label>
          Search
          <input type="search" name="search" value={text} maxLength={200} onInput={(e) => setText(e.currentTarget.value)} placeholder={viewer.canSeePii ? 'name, email, phone or handle' : 'name'} />
        </label>
        <button type="submit">Search</button>
      </form>
      <p class="hint">{viewer.canSeePii ? 'Your role may search by email, phone and handle.' : 'Your role searches by name only; emails and phone numbers stay hidden.'}</p>
      <ErrorBox error={q.error} />
      <Section title={q.data ? `${q.data.customers.totalCount} customers` : 'Customers'} id="results">
        <table class="table" data-testid="customer-results">
          <thead>
            <tr>
              <th scope="col">Customer</th>
              <th scope="col">Sentiment</th>
              <th scope="col">Interactions</th>
              <th scope="col">Last activity</th>
            </tr>
          </thead>
          <tbody>
            {(q.data?.customers.edges ?? []).map(({ node: c }) => (
              <tr>
                <th scope="row">
                  <a href={`#/customers/${encodeURIComponent(c.id)}`} dir="auto">
                    {c.displayName ?? 'unnamed customer'}
                  </a>
                </th>
                <td>
                  <SentimentBadge label={c.sentiment.label} score={c.sentiment.score} />
                </td>
                <td>{c.sentiment.interactionCount}</td>
                <td>{when(c.sentiment.lastInteractionAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {q.data && q.data.customers.edges.length === 0 && <p class="muted">No customer matches.</p>}
      </Section>
    </div>
  );
}

const CUSTOMER = `query Customer($id: ID!, $from: DateTimeISO!, $to: DateTimeISO!) {
  customer(id: $id) {
    id displayName createdAt
    sentiment { score label trend interactionCount lastInteractionAt }
    identities { kind value redacted source network }
    crmRecords { system objectType externalId url owner }
    mergeHistory { id action actor reason createdAt undoneAt survivorId mergedId score }
    interactions(first: 25) { edges { node {
      id occurredAt direction source text intent
      topics { name department }
      sentiment { label score explanation { token weight } }
    } } }
  }
  sentimentTrend(scope: CUSTOMER, id: $id, bucket: WEEK, from: $from, to: $to) { start averageScore count negativeCount positiveCount }
}`;

const SUGGESTIONS = `query Suggestions { mergeSuggestions(first: 100) { edges { node {
  id score reason status createdAt customerA { id displayName } customerB { id displayName }
} } } }`;

interface CustomerDetail {
  id: string;
  displayName: string | null;
  createdAt: string;
  sentiment: { score: number | null; label: Label | null; trend: number | null; interactionCount: number; lastInteractionAt: string | null };
  identities: { kind: string; value: string | null; redacted: boolean; source: string; network: string | null }[];
  crmRecords: { system: string; objectType: string; externalId: string; url: string | null; owner: string | null }[];
  mergeHistory: { id: string; action: string; actor: string; reason: string; createdAt: string; undoneAt: string | null; survivorId: string | null; mergedId: string | null; score: number | null }[];
  interactions: {
    edges: {
      node: { id: string; occurredAt: string; direction: string; source: string; text: string; intent: string; topics: { name: string; department: string }[]; sentiment: { label: Label; score: number; explanation: { token: string; weight: number }[] } };
    }[];
  };
}

const DAY = 86_400_000;

export function CustomerPage({ id, viewer }: { id: string; viewer: Viewer }) {
  const [range] = useState(() => ({ from: new Date(Date.now() - 182 * DAY).toISOString(), to: new Date(Date.now() + DAY).toISOString() }));
  const q = useQuery<{ customer: CustomerDetail | null; sentimentTrend: { start: string; averageScore: number | null; count: number }[] }>(CUSTOMER, { id, ...range });
  const canReview = viewer.role === 'admin' || viewer.role === 'agent';
  const s = useQuery<{ mergeSuggestions: { edges: { node: { id: string; score: number | null; reason: string; customerA: { id: string; displayName: string | null } | null; customerB: { id: string; displayName: string | null } | null } }[] } }>(
    SUGGESTIONS,
    {},
    !canReview,
  );
  const [error, setError] = useState<string | null>(null);
  const act = async (query: string, variables: Record<string, unknown>) => {
    setError(null);
    try {
      const d = await gql<{ r: { customers?: { id: string }[] } }>(query, variables);
      // after a merge this customer may be gone: follow the survivor
      const survivor = d.r.customers?.[0]?.id;
      if (survivor && survivor !== id) location.hash = `#/customers/${encodeURIComponent(survivor)}`;
      await Promise.all([q.reload(), s.reload()]);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };

  if (q.error) return <ErrorBox error={q.error} />;
  if (!q.data) return <p class="loading">Loading…</p>;
  const c = q.data.customer;
  if (!c) return <p>This customer does not exist (it may have been merged into another).</p>;
  const trend = q.data.sentimentTrend;
  const suggestions = (s.data?.mergeSuggestions.edges ?? []).map((e) => e.node).filter((x) => x.customerA?.id === c.id || x.customerB?.id === c.id);
  return (
    <div class="customer">
      <h1 dir="auto">{c.displayName ?? 'Unnamed customer'}</h1>
      <ErrorBox error={error} />
      <div class="grid">
        <Section title="Sentiment">
          <p>
            <SentimentBadge label={c.sentiment.label} score={c.sentiment.score} /> over {c.sentiment.interactionCount} interactions; last {when(c.sentiment.lastInteractionAt)}
          </p>
          <TrendChart
            title="Weekly average sentiment (bars: interactions)"
            labels={trend.map((p) => p.start.slice(0, 10))}
            yMin={-1}
            yMax={1}
            series={[
              { label: 'average score', values: trend.map((p) => p.averageScore), color: '#1d4ed8' },
              { label: 'interactions', values: trend.map((p) => p.count), color: '#64748b', bar: true, secondary: true },
            ]}
          />
        </Section>
        <Section title="Identities">
          <ul class="plain" data-testid="identities">
            {c.identities.map((i) => (
              <li>
                <span class="kind">{i.kind.toLowerCase()}</span> {i.redacted || i.value === null ? <span class="muted">hidden for your role</span> : <bdi>{i.value}</bdi>}
                {i.network && <span class="muted"> ({i.network})</span>}
              </li>
            ))}
          </ul>
          <h3>CRM records</h3>
          <ul class="plain">
            {c.crmRecords.length === 0 && <li class="muted">not linked</li>}
            {c.crmRecords.map((r) => (
              <li>
                {safeHref(r.url) ? (
                  <a href={safeHref(r.url)!} target="_blank" rel="noreferrer noopener">
                    {r.system.toLowerCase()} <bdi>{r.objectType}</bdi> <bdi>{r.externalId}</bdi>
                  </a>
                ) : (
                  <>
                    {r.system.toLowerCase()} <bdi>{r.objectType}</bdi> <bdi>{r.externalId}</bdi>
                  </>
                )}
                {r.owner && (
                  <span class="muted">
                    {' '}
                    · owner <bdi>{r.owner}</bdi>
                  </span>
                )}
              </li>
            ))}
          </ul>
        </Section>
      </div>
      <Section title="Interactions">
        <ol class="thread">
          {c.interactions.edges.map(({ node: m }) => (
            <li class={m.direction === 'OUTBOUND' ? 'out' : 'in'}>
              <LongText text={m.text} />
              <p class="meta">
                {when(m.occurredAt)} · {m.source} · {m.intent.replace('_', ' ').toLowerCase()} · <SentimentBadge label={m.sentiment.label} score={m.sentiment.score} />
                {m.topics.length > 0 && (
                  <>
                    {' · '}
                    <bdi>{m.topics.map((t) => t.name).join(', ')}</bdi>
                  </>
                )}
              </p>
              <Explanation items={m.sentiment.explanation} />
            </li>
          ))}
        </ol>
      </Section>
      {canReview && (
        <Section title="Merge suggestions">
          {suggestions.length === 0 && <p class="muted">None pending for this customer.</p>}
          <ul class="plain">
            {suggestions.map((x) => {
              const other = x.customerA?.id === c.id ? x.customerB : x.customerA;
              return (
                <li>
                  Same person as{' '}
                  <a href={`#/customers/${encodeURIComponent(other?.id ?? '')}`}>
                    <bdi>{other?.displayName ?? 'unnamed'}</bdi>
                  </a>
                  ? <bdi>{x.reason}</bdi>
                  {x.score != null && ` (${x.score.toFixed(1)} bits)`}{' '}
                  <button onClick={() => void act(`mutation Accept($id: ID!) { r: acceptMergeSuggestion(id: $id) { customers { id } } }`, { id: x.id })}>Accept</button>{' '}
                  <button onClick={() => void act(`mutation Reject($id: ID!) { r: rejectMergeSuggestion(id: $id) { id } }`, { id: x.id })}>Reject</button>
                </li>
              );
            })}
          </ul>
        </Section>
      )}
      <Section title="Merge history">
        {c.mergeHistory.length === 0 && <p class="muted">No merges.</p>}
        <table class="table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">What</th>
              <th scope="col">Who</th>
              <th scope="col">Why</th>
              {viewer.role === 'admin' && <th scope="col">Undo</th>}
            </tr>
          </thead>
          <tbody>
            {c.mergeHistory.map((m) => (
              <tr>
                <td>{when(m.createdAt)}</td>
                <td>
                  {m.action.toLowerCase()}
                  {m.undoneAt && <span class="muted"> (undone {when(m.undoneAt)})</span>}
                </td>
                <td dir="auto">{m.actor}</td>
                <td dir="auto">{m.reason}</td>
                {viewer.role === 'admin' && (
                  <td>
                    {m.action === 'MERGE' && !m.undoneAt && (
                      <button onClick={() => void act(`mutation Undo($id: ID!) { r: unmergeCustomer(mergeId: $id, reason: "undone in the console") { customers { id } } }`, { id: m.id })}>Undo merge</button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </div>
  );
}
