import type { DataSource } from 'typeorm';
import { Direction, Intent, SentimentLabel } from '../graphql/enums';
import type { Window } from '../graphql/keyset';
import type { AppError } from '../shared/app-error';
import { fromGlobalId, toGlobalId, type Page } from '../graphql/relay';
import * as repo from './interaction.repository';
import { InteractionOrder, type InteractionJsonRow, type InteractionRow } from './interaction.repository';
import { Interaction, type TopicRef } from './interaction.type';

export { INTERACTION_COLUMNS, INTERACTION_ORDERS, InteractionOrder, type InteractionRow } from './interaction.repository';

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
    const customerId = filter.customerId ? fromGlobalId(filter.customerId, 'Customer').id : null;
    return repo.interactionPage(this.ds, w, { ...filter, customerId }, order, toInteraction);
  }

  async byIds(ids: readonly string[]): Promise<(Interaction | null)[]> {
    const rows = await repo.interactionsByIds(this.ds, ids);
    const byId = new Map(rows.map((r) => [r.id, toInteraction(r)]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  async topicsOf(interactionIds: readonly string[]): Promise<TopicRef[][]> {
    const rows = await repo.topicsOfInteractions(this.ds, interactionIds);
    const grouped = new Map<string, TopicRef[]>();
    for (const r of rows) grouped.set(r.interaction_id, [...(grouped.get(r.interaction_id) ?? []), { name: r.name, department: r.department }]);
    return interactionIds.map((id) => grouped.get(id) ?? []);
  }

  /**
   * One page of interactions for each of many customers in one query whatever their number
   * (a LATERAL join); each page's totalCount is `countOf(customerId)`, called only when asked for.
   * A customer whose list the window's cursor is not of gets its error instead of a page.
   */
  async pagesByCustomer(customerIds: readonly string[], w: Window, order: InteractionOrder, countOf: (customerId: string) => Promise<number>): Promise<(Page<Interaction> | AppError)[]> {
    return repo.interactionPagesByCustomer(this.ds, customerIds, w, order, toInteraction, countOf);
  }

  /** Interactions per customer, for the totalCount of their pages. */
  async countsByCustomer(customerIds: readonly string[]): Promise<number[]> {
    const counts = await repo.countsByCustomer(this.ds, customerIds);
    const totals = new Map(counts.map((c) => [c.customer_id, c.total]));
    return customerIds.map((id) => totals.get(id) ?? 0);
  }
}
