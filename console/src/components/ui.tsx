import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, gql } from '../api';

export interface QueryState<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => Promise<void>;
}

const prefetched = new Map<string, Promise<unknown>>();

/**
 * Starts a query before the page that needs it is on screen (at start, while the sign-in is
 * still being checked), so the first paint waits for one round trip instead of two.
 */
export function prefetch(query: string, variables: Record<string, unknown>): void {
  const key = query + JSON.stringify(variables);
  const p = gql(query, variables);
  // a failed prefetch (Earshot restarting) is forgotten: the page asks again when it opens
  p.catch(() => {
    if (prefetched.get(key) === p) prefetched.delete(key);
  });
  prefetched.set(key, p);
}

/** Codes of a failure that heals by itself (a restart, a busy database, a dropped connection). */
const TRANSIENT = new Set(['NETWORK', 'BAD_RESPONSE', 'SERVICE_UNAVAILABLE', 'TIME_BUDGET_EXCEEDED', 'INTERNAL_SERVER_ERROR']);
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Runs a query when its variables change; `reload` runs it again (after a mutation or an event).
 * A load that fails for a reason that heals by itself is tried again, 1 s after the first failure
 * and doubling up to 30 s, with the error on screen meanwhile: before, one busy moment left a
 * page (the queue an agent keeps open all day) on its error until something else reloaded it.
 */
export function useQuery<T>(query: string, variables: Record<string, unknown>, skip = false): QueryState<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(!skip);
  const key = JSON.stringify(variables);
  const latest = useRef(0);
  const retry = useRef<{ timer: ReturnType<typeof setTimeout> | null; delay: number }>({ timer: null, delay: RETRY_FIRST_MS });
  const reload = useCallback(async () => {
    if (skip) return;
    const ticket = ++latest.current;
    if (retry.current.timer) clearTimeout(retry.current.timer);
    retry.current.timer = null;
    setLoading(true);
    try {
      const early = prefetched.get(query + key);
      prefetched.delete(query + key);
      const d = (await (early ?? gql<T>(query, JSON.parse(key) as Record<string, unknown>))) as T;
      // an older answer arriving late must not overwrite a newer one
      if (ticket === latest.current) {
        setData(d);
        setError(null);
        retry.current.delay = RETRY_FIRST_MS;
      }
    } catch (e) {
      if (ticket === latest.current) {
        setError(e instanceof ApiError ? e.message : String(e));
        if (e instanceof ApiError && TRANSIENT.has(e.code)) {
          const delay = retry.current.delay;
          retry.current.delay = Math.min(delay * 2, RETRY_MAX_MS);
          retry.current.timer = setTimeout(() => void reloadRef.current(), delay);
        }
      }
    } finally {
      if (ticket === latest.current) setLoading(false);
    }
  }, [query, key, skip]);
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  useEffect(() => {
    retry.current.delay = RETRY_FIRST_MS;
    void reload();
  }, [reload]);
  // a page left takes its pending retry along (new variables clear it in reload)
  useEffect(
    () => () => {
      latest.current++;
      if (retry.current.timer) clearTimeout(retry.current.timer);
    },
    [],
  );
  return { data, error, loading, reload };
}

/**
 * A link to somewhere else (a CRM record) only when it is http(s): the URL comes from outside
 * (an OAuth token answer's instance URL, configuration), and a javascript: or data: URL must
 * never become a link an agent clicks. Anything else is shown as text.
 */
export function safeHref(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}

const graphemes = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
/** A grapheme longer than this (zalgo: one letter under hundreds of combining marks) keeps only its first code points. */
const MAX_CLUSTER = 8;

/**
 * The start of a customer's text, at most `max` UTF-16 units, cut between characters (never
 * inside an emoji's surrogate pair or a flag, which `slice` did and the page showed as "�"),
 * with runs of white space (a flood of newlines before the words) as one space and "…" when cut.
 */
export function excerpt(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  let out = '';
  // graphemes of the head only: a 100 kB text is not segmented whole
  const head = flat.slice(0, max * 4 + 64);
  for (const g of graphemes ? Array.from(graphemes.segment(head), (s) => s.segment) : Array.from(head)) {
    const cluster = g.length > MAX_CLUSTER ? Array.from(g).slice(0, MAX_CLUSTER).join('') : g;
    if (out.length + cluster.length > max) break;
    out += cluster;
  }
  return `${out.trimEnd()}…`;
}

/** Longer messages show their first part and a button for the rest (an agent's actions stay near). */
export const LONG_TEXT = 2_000;

/**
 * A customer's message: its own bidi paragraph (`dir="auto"`, so a right-to-left override in it
 * reorders nothing around it), and when it is longer than LONG_TEXT, its first LONG_TEXT
 * characters with a button to show it whole. Before, a 100,000-character message made the item
 * panel 41,000 px tall and put the actions below it.
 */
export function LongText({ text }: { text: string }) {
  const [whole, setWhole] = useState(false);
  if (text.length <= LONG_TEXT) return <p dir="auto">{text}</p>;
  return (
    <>
      <p dir="auto">{whole ? text : excerpt(text, LONG_TEXT)}</p>
      <button type="button" class="link more" aria-expanded={whole} onClick={() => setWhole(!whole)}>
        {whole ? 'Show less' : `Show all ${text.length.toLocaleString('en')} characters`}
      </button>
    </>
  );
}

export function ErrorBox({ error }: { error: string | null }) {
  return error ? (
    <p role="alert" class="error">
      {error}
    </p>
  ) : null;
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section aria-labelledby={id ?? slug(title)} class="card">
      <h2 id={id ?? slug(title)}>{title}</h2>
      {children}
    </section>
  );
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-');

export type Label = 'POSITIVE' | 'NEUTRAL' | 'NEGATIVE';

export function SentimentBadge({ label, score }: { label: Label | null | undefined; score?: number | null }) {
  if (!label) return <span class="badge">no data</span>;
  return (
    <span class={`badge ${label.toLowerCase()}`}>
      {label.toLowerCase()}
      {score != null && ` ${score >= 0 ? '+' : ''}${score.toFixed(2)}`}
    </span>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "in 2 h 5 min" / "3 h 10 min overdue", against the given clock. */
export function timeLeft(dueIso: string, now: number): string {
  const s = Math.round((Date.parse(dueIso) - now) / 1000);
  const abs = Math.abs(s);
  const d = Math.floor(abs / 86400);
  const h = Math.floor((abs % 86400) / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const text = d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${m} min`;
  return s >= 0 ? `in ${text}` : `${text} overdue`;
}

export const pct = (x: number | null | undefined) => (x == null ? '—' : `${Math.round(x * 100)}%`);
export const num = (x: number | null | undefined, digits = 2) => (x == null ? '—' : x.toFixed(digits));

export function duration(seconds: number | null | undefined): string {
  if (seconds == null) return '—';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

/** The words that moved the score, as chips coloured by direction. */
export function Explanation({ items }: { items: { token: string; weight: number }[] }) {
  if (items.length === 0) return <span class="muted">no scoring words</span>;
  return (
    <ul class="chips" aria-label="Words that moved the score">
      {items.slice(0, 8).map((e) => (
        <li class={e.weight < 0 ? 'neg' : 'pos'} title={`weight ${e.weight}`}>
          {e.token} <span class="w">{e.weight > 0 ? '+' : ''}{e.weight.toFixed(2)}</span>
        </li>
      ))}
    </ul>
  );
}
