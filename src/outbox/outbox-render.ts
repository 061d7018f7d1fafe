import {
  enrichedEventRows,
  outboxEventsRendered,
  sentimentEventRows,
  type EnrichedEventRow,
  type OutboxEventRow,
  type OutboxSelection,
  type RelayDb,
  type SentimentEventRow,
} from './outbox.repository';

/** Which parts of the selected rows hold events: interactions, customer summaries, events stored as given. */
export type OutboxParts = readonly [boolean, boolean, boolean];

/**
 * The events of outbox rows, their JSON written here from the rows they describe. The `outbox`
 * view stays the definition of each event. The relay reads the same columns the view reads and
 * writes the same fields in the same order, with the same values. PostgreSQL building that JSON was the
 * largest statement of an ingest run: the view took 25–27 µs of a core per enriched event,
 * reading the columns 14–15 (measured on 30,000, two runs each), and writing the JSON here costs the relay's thread a few more.
 * Every event is compared with the view's in test/integration/outbox-render.test.ts.
 * Events stored as given (part 2: tombstones, listening-gap events) still come from the view.
 *
 * Only the parts that hold events are read (`parts`, from the rows' counts; a slice reads its own
 * part), so a row of tombstones or escalations costs one statement, not three.
 */
export async function outboxEvents(db: RelayDb, sel: OutboxSelection, parts: OutboxParts): Promise<OutboxEventRow[]> {
  const part = 'slice' in sel ? sel.slice.part : null;
  if (part === 0) return inRowOrder(await enrichedEventRows(db, sel)).map(enrichedEvent);
  if (part === 1) return inRowOrder(await sentimentEventRows(db, sel)).map(sentimentEvent);
  if (part === 2) return outboxEventsRendered(db, sel);
  // the parts are read at the same time, each on a connection of the pool (one after the other on a single client)
  const [enriched, sentiment, asGiven] = await Promise.all([
    parts[0] ? enrichedEventRows(db, sel).then(inRowOrder) : [],
    parts[1] ? sentimentEventRows(db, sel).then(inRowOrder) : [],
    parts[2] ? outboxEventsRendered(db, sel, 2) : [],
  ]);
  // row order (row, part, seq): each list is in (row, seq) order
  const byRow = new Map<string, OutboxEventRow[]>();
  const add = (e: OutboxEventRow) => {
    let list = byRow.get(e.batch_id);
    if (!list) byRow.set(e.batch_id, (list = []));
    list.push(e);
  };
  for (const r of enriched) add(enrichedEvent(r));
  for (const r of sentiment) add(sentimentEvent(r));
  for (const e of asGiven) add(e);
  return [...byRow.keys()].sort(compareIds).flatMap((id) => byRow.get(id)!);
}

/** Outbox row ids (bigint as text, no leading zeros) in numeric order: by length, then as text. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Rows of one part in (row, seq) order, the order the relay publishes in; sorted in place. */
export function inRowOrder<T extends { batch_id: string; seq: number }>(rows: T[]): T[] {
  return rows.sort((a, b) => compareIds(a.batch_id, b.batch_id) || a.seq - b.seq);
}

const str = JSON.stringify as (s: string | null) => string;

/** A float8 as json_build_object writes it: a number, or the string PostgreSQL gives NaN and the infinities. */
function num(x: number | null): string {
  if (x === null) return 'null';
  return Number.isFinite(x) ? String(x) : `"${Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity'}"`;
}

function headers(eventId: string, trace: string | null): Record<string, string> {
  const h: Record<string, string> = { 'schema-version': '1', 'event-id': eventId, 'content-type': 'application/json' };
  return trace === null ? h : Object.assign(h, JSON.parse(trace) as Record<string, string>);
}

/** How many explanation items an interactions.enriched.v1 event carries (as the `outbox` view). */
export const PUBLISHED_EXPLANATION_ITEMS = 20;

/**
 * At most `max` items of a JSON array, from its text: the text itself when the array holds no
 * more than `max` (or when it is not an array), else its first `max` items as written, in
 * brackets. The same JSON as the view's `json_agg` of the first `max` elements, without parsing:
 * one pass that counts the commas between the array's own items (not those inside strings,
 * objects or nested arrays). Expects valid JSON, as a `json` column holds.
 */
export function firstJsonItems(json: string, max: number): string {
  if (!(max >= 1)) throw new RangeError(`firstJsonItems: max must be at least 1, got ${max}`);
  const n = json.length;
  let i = 0;
  while (i < n && json.charCodeAt(i) <= 0x20) i++;
  if (json.charCodeAt(i) !== 0x5b) return json;
  const start = i;
  let depth = 0;
  let items = 0;
  for (; i < n; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      // a string: skip to its closing quote, past escaped characters
      for (i++; i < n; i++) {
        const d = json.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      if (--depth === 0) return json;
    } else if (c === 0x2c && depth === 1 && ++items === max) return `${json.slice(start, i)}]`;
  }
  return json;
}

/** interactions.enriched.v1 (the view's part 0). */
export function enrichedEvent(r: EnrichedEventRow): OutboxEventRow {
  const payload =
    `{"schemaVersion":1,"eventId":${str(r.event_id)},"interactionId":${str(r.id)},"sourceEventId":${str(r.source_event_id)},` +
    `"source":${str(r.source)},"externalId":${str(r.external_id)},"url":${str(r.url)},"occurredAt":${str(r.occurred_at)},` +
    `"direction":${str(r.direction)},"inReplyTo":${str(r.in_reply_to)},` +
    `"author":{"handle":${str(r.author_handle)},"displayName":${str(r.author_display_name)}},` +
    `"text":${str(r.text)},"lang":${str(r.lang)},"rating":${num(r.rating)},` +
    `"sentiment":{"score":${num(r.sentiment_score)},"label":${str(r.sentiment_label)},"confidence":${num(r.sentiment_confidence)},` +
    `"model":${str(r.sentiment_model)},"explanation":${firstJsonItems(r.explanation, PUBLISHED_EXPLANATION_ITEMS)}},` +
    `"intent":{"name":${str(r.intent)},"confidence":${num(r.intent_confidence)}},` +
    `"topics":${r.topics ?? '[]'},"departments":${r.departments ?? '[]'},"customerId":${str(r.customer_id)},"processedAt":${str(r.processed_at)}}`;
  return {
    batch_id: r.batch_id,
    part: 0,
    topic: 'interactions.enriched.v1',
    message_key: r.customer_id ?? `${r.source}:${r.external_id}`,
    payload,
    headers: headers(r.event_id, r.trace_headers),
    author_source: r.source,
    author_handle: r.author_handle,
    display_name: r.author_display_name,
  };
}

/** customer-sentiment.v1 (the view's part 1). */
export function sentimentEvent(r: SentimentEventRow): OutboxEventRow {
  const payload =
    `{"schemaVersion":1,"eventId":${str(r.event_id)},"customerId":${str(r.id)},"displayName":${str(r.display_name)},` +
    `"score":${num(r.sentiment_score)},"label":${str(r.sentiment_label)},"trend30d":${num(r.sentiment_trend)},` +
    `"interactionCount":${r.interaction_count},"lastInteractionAt":${str(r.last_interaction_at)},"url":${str(r.url)},"updatedAt":${str(r.updated_at)}}`;
  return {
    batch_id: r.batch_id,
    part: 1,
    topic: 'customer-sentiment.v1',
    message_key: r.id,
    payload,
    headers: headers(r.event_id, r.trace_headers),
    author_source: null,
    author_handle: null,
    display_name: r.display_name,
  };
}
