import type { DataSource } from 'typeorm';
import { Direction, Intent, SentimentLabel } from '../graphql/enums';
import { keyset, type SortKey, type Window } from '../graphql/keyset';
import { fromGlobalId, toGlobalId, type Page } from '../graphql/relay';

/** Orders of interaction lists. */
export enum InteractionOrder {
  NEWEST = 'newest',
  OLDEST = 'oldest',
}

// occurred_at read back as text: a JS Date drops the microseconds a cursor needs
export const INTERACTION_ORDERS: Record<InteractionOrder, SortKey> = {
  [InteractionOrder.NEWEST]: { name: 'newest', expr: 'i.occurred_at', type: 'timestamptz', desc: true },
  [InteractionOrder.OLDEST]: { name: 'oldest', expr: 'i.occurred_at', type: 'timestamptz', desc: false },
};
import { Interaction, type TopicRef } from './interaction.type';

export interface InteractionFilter {
  source?: string | null;
  direction?: Direction | null;
  label?: SentimentLabel | null;
  intent?: Intent | null;
  /** opaque Customer id */
  customerId?: string | null;
  from?: Date | null;
  to?: Date | null;
}

export interface InteractionRow {
  id: string;
  source: string;
  external_id: string;
  url: string | null;
  text: string;
  occurred_at: Date;
  direction: string;
  in_reply_to: string | null;
  author_handle: string | null;
  author_display_name: string | null;
  lang: string | null;
  rating: number | null;
  sentiment_score: number;
  sentiment_label: string;
  sentiment_confidence: number;
  intent: string;
  intent_confidence: number;
  explanation: { token: string; weight: number }[];
  sentiment_model: string | null;
  complaint: boolean | null;
  complaint_probability: number | null;
  unhappy: boolean | null;
  customer_id: string | null;
  sort_key: string;
}

export const INTERACTION_COLUMNS = `i.id, i.source, i.external_id, i.url, i.text, i.occurred_at, i.direction, i.in_reply_to,
  i.author_handle, i.author_display_name, i.lang, i.rating, i.sentiment_score, i.sentiment_label,
  i.sentiment_confidence, i.intent, i.intent_confidence, i.explanation, i.sentiment_model, i.complaint, i.complaint_probability, i.unhappy, i.customer_id, i.occurred_at::text AS sort_key`;

export function toInteraction(r: InteractionRow): Interaction {
  const i = new Interaction();
  i.id = toGlobalId('Interaction', r.id);
  i.uuid = r.id;
  i.customerUuid = r.customer_id;
  i.source = r.source;
  i.externalId = r.external_id;
  i.url = r.url;
  i.text = r.text;
  i.occurredAt = r.occurred_at;
  i.direction = r.direction as Direction;
  i.inReplyTo = r.in_reply_to;
  i.author = { source: r.source, handle: r.author_handle, displayName: r.author_display_name };
  i.lang = r.lang;
  i.rating = r.rating;
  i.sentiment = {
    score: r.sentiment_score,
    label: r.sentiment_label as SentimentLabel,
    confidence: r.sentiment_confidence,
    explanation: r.explanation,
    model: r.sentiment_model,
  };
  i.intent = r.intent as Intent;
  i.intentConfidence = r.intent_confidence;
  i.complaint = r.complaint;
  i.complaintProbability = r.complaint_probability;
  i.unhappy = r.unhappy;
  return i;
}

/** One interaction as {@link interactionJson} lists it. */
export type InteractionJsonRow = [
  id: string, source: string, externalId: string, url: string | null, text: string, occurredAt: string, direction: string,
  inReplyTo: string | null, authorHandle: string | null, authorDisplayName: string | null, lang: string | null, rating: number | null,
  score: number, label: string, confidence: number, intent: string, intentConfidence: number,
  explanation: { token: string; weight: number }[] | null, model: string | null, customerId: string | null, sortKey: string,
  complaint: boolean | null, complaintProbability: number | null, unhappy: boolean | null,
];

/** The slots of InteractionJsonRow, in order: the column each is read from. */
const INTERACTION_JSON_SLOTS = [
  'id', 'source', 'external_id', 'url', 'text', 'occurred_at', 'direction', 'in_reply_to', 'author_handle', 'author_display_name', 'lang', 'rating',
  'sentiment_score', 'sentiment_label', 'sentiment_confidence', 'intent', 'intent_confidence', 'explanation', 'sentiment_model', 'customer_id', 'sort_key',
  'complaint', 'complaint_probability', 'unhappy',
] as const;

/** Columns every prefetched interaction carries whatever is selected: its id and cursor. */
const ALWAYS = new Set(['id', 'sort_key']);

/**
 * One interaction as a JSON list, in InteractionJsonRow's order, from a row of INTERACTION_COLUMNS aliased `i`.
 * Only the `columns` the selection reads are filled (all of them when null), the others are
 * NULL: never read, as no selected field resolves from them.
 */
export function interactionJson(columns: ReadonlySet<string> | null): string {
  return `json_build_array(${INTERACTION_JSON_SLOTS.map((c) => (!columns || columns.has(c) || ALWAYS.has(c) ? `i.${c}` : 'NULL')).join(', ')})`;
}

/** The interaction {@link interactionJson} listed (unfilled slots come back null and are never read). */
export function fromInteractionJson(j: InteractionJsonRow): Interaction {
  const row: InteractionRow = {
    id: j[0], source: j[1], external_id: j[2], url: j[3], text: j[4], occurred_at: new Date(j[5]), direction: j[6],
    in_reply_to: j[7], author_handle: j[8], author_display_name: j[9], lang: j[10], rating: j[11],
    sentiment_score: j[12], sentiment_label: j[13], sentiment_confidence: j[14], intent: j[15], intent_confidence: j[16],
    // not selected (the columns interactionJson was given): never read
    explanation: j[17] ?? [], sentiment_model: j[18], customer_id: j[19], sort_key: j[20],
    complaint: j[21], complaint_probability: j[22], unhappy: j[23],
  };
  return toInteraction(row);
}

export class InteractionService {
  constructor(private readonly ds: DataSource) {}

  /** In the asked order of occurredAt, keyset-paged on (occurred_at, id). */
  async page(w: Window, filter: InteractionFilter = {}, order: InteractionOrder = InteractionOrder.NEWEST): Promise<Page<Interaction>> {
    const sort = INTERACTION_ORDERS[order];
    const where: string[] = ['true'];
    const params: unknown[] = [];
    const add = (sql: (p: string) => string, value: unknown) => {
      params.push(value);
      where.push(sql(`$${params.length}`));
    };
    if (filter.source) add((p) => `i.source = ${p}`, filter.source);
    if (filter.direction) add((p) => `i.direction = ${p}`, filter.direction);
    if (filter.label) add((p) => `i.sentiment_label = ${p}`, filter.label);
    if (filter.intent) add((p) => `i.intent = ${p}`, filter.intent);
    if (filter.customerId) add((p) => `i.customer_id = ${p}::uuid`, fromGlobalId(filter.customerId, 'Customer').id);
    if (filter.from) add((p) => `i.occurred_at >= ${p}`, filter.from);
    if (filter.to) add((p) => `i.occurred_at < ${p}`, filter.to);
    const countWhere = where.join(' AND ');
    const countParams = [...params];
    const k = keyset(sort, 'i.id', w, params);
    params.push(k.limit);
    const rows = (await this.ds.query(
      `SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE ${[...where, ...k.conditions].join(' AND ')}
       ORDER BY ${k.orderBy} LIMIT $${params.length}`,
      params,
    )) as InteractionRow[];
    return k.page(rows, toInteraction, (r) => [r.sort_key, r.id], async () =>
      ((await this.ds.query(`SELECT count(*)::int AS total FROM interaction i WHERE ${countWhere}`, countParams)) as { total: number }[])[0]!.total,
    );
  }

  async byIds(ids: readonly string[]): Promise<(Interaction | null)[]> {
    const rows: InteractionRow[] = await this.ds.query(`SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.id = ANY($1::uuid[])`, [ids]);
    const byId = new Map(rows.map((r) => [r.id, toInteraction(r)]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  async topicsOf(interactionIds: readonly string[]): Promise<TopicRef[][]> {
    const rows: { interaction_id: string; name: string; department: string }[] = await this.ds.query(
      `SELECT it.interaction_id, t.name, d.name AS department
         FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
        WHERE it.interaction_id = ANY($1::uuid[]) ORDER BY t.name`,
      [interactionIds],
    );
    const grouped = new Map<string, TopicRef[]>();
    for (const r of rows) grouped.set(r.interaction_id, [...(grouped.get(r.interaction_id) ?? []), { name: r.name, department: r.department }]);
    return interactionIds.map((id) => grouped.get(id) ?? []);
  }

  /**
   * One page of interactions for each of many customers in one query whatever their number
   * (a LATERAL join); each page's totalCount is `countOf(customerId)`, called only when asked for.
   */
  async pagesByCustomer(customerIds: readonly string[], w: Window, order: InteractionOrder, countOf: (customerId: string) => Promise<number>): Promise<Page<Interaction>[]> {
    const params: unknown[] = [customerIds];
    const k = keyset(INTERACTION_ORDERS[order], 'i.id', w, params);
    params.push(k.limit);
    const rows = (await this.ds.query(
      `SELECT x.* FROM unnest($1::uuid[]) AS c(id) CROSS JOIN LATERAL (
         SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.customer_id = c.id ${k.conditions.map((c) => `AND ${c}`).join(' ')}
          ORDER BY ${k.orderBy} LIMIT $${params.length}) x`,
      params,
    )) as InteractionRow[];
    const grouped = new Map<string, InteractionRow[]>();
    for (const r of rows) {
      const list = grouped.get(r.customer_id!);
      if (list) list.push(r);
      else grouped.set(r.customer_id!, [r]);
    }
    return customerIds.map((id) => k.page(grouped.get(id) ?? [], toInteraction, (r) => [r.sort_key, r.id], () => countOf(id)));
  }

  /** Interactions per customer, for the totalCount of their pages. */
  async countsByCustomer(customerIds: readonly string[]): Promise<number[]> {
    const counts = (await this.ds.query(
      `SELECT customer_id, count(*)::int AS total FROM interaction WHERE customer_id = ANY($1::uuid[]) GROUP BY customer_id`,
      [customerIds],
    )) as { customer_id: string; total: number }[];
    const totals = new Map(counts.map((c) => [c.customer_id, c.total]));
    return customerIds.map((id) => totals.get(id) ?? 0);
  }
}
