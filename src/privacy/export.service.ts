import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Everything Earshot holds about one person (a data subject access request), as plain JSON.
 *
 * Must stay true: every table that can hold the customer's data is read here (the erasure test
 * checks the same list): the customer rows (merged-away ones too), identities, interactions with
 * their topics, CRM records, listening items, merge suggestions and history, daily rollups,
 * write-back state, outbox rows not yet sent and erasure requests.
 */
export class CustomerExportService {
  constructor(private readonly ds: DataSource) {}

  async export(customerId: string): Promise<Record<string, unknown>> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    const ids: string[] = (
      await this.ds.query(
        `WITH root AS (SELECT coalesce(merged_into_id, id) AS id FROM customer WHERE id = $1)
         SELECT c.id FROM customer c, root WHERE c.id = root.id OR c.merged_into_id = root.id ORDER BY c.id`,
        [customerId],
      )
    ).map((r: { id: string }) => r.id);
    if (ids.length === 0) throw AppError.notFound(`customer ${customerId}`);
    const q = (sql: string) => this.ds.query(sql, [ids]) as Promise<Record<string, unknown>[]>;
    const [customers, identities, interactions, crmRecords, listeningItems, suggestions, history, daily, writeback, outbox, erasures] = await Promise.all([
      q(`SELECT * FROM customer WHERE id = ANY($1::uuid[]) ORDER BY created_at`),
      q(`SELECT id, customer_id, kind, network, value, raw_value, source, linked_by, link_score, created_at FROM customer_identity WHERE customer_id = ANY($1::uuid[]) ORDER BY created_at`),
      q(`SELECT i.*, coalesce((SELECT json_agg(json_build_object('topic', t.name, 'department', d.name, 'matched', it.matched) ORDER BY t.name)
                                 FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
                                WHERE it.interaction_id = i.id), '[]') AS topics
           FROM interaction i WHERE i.customer_id = ANY($1::uuid[]) ORDER BY i.occurred_at, i.id`),
      q(`SELECT id, customer_id, system, object_type, external_id, owner_id, payload, person, modstamp, deleted_at, written_values, written_at FROM crm_record WHERE customer_id = ANY($1::uuid[]) ORDER BY system, object_type, external_id`),
      q(`SELECT * FROM listening_item WHERE customer_id = ANY($1::uuid[]) ORDER BY opened_at`),
      q(`SELECT * FROM merge_suggestion WHERE customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[]) ORDER BY created_at`),
      q(`SELECT * FROM merge_audit WHERE survivor_id = ANY($1::uuid[]) OR merged_id = ANY($1::uuid[]) ORDER BY created_at`),
      q(`SELECT * FROM customer_sentiment_daily WHERE customer_id = ANY($1::uuid[]) ORDER BY day`),
      q(`SELECT * FROM crm_writeback WHERE customer_id = ANY($1::uuid[])`),
      q(`SELECT batch_id AS id, topic, message_key, payload, created_at FROM outbox WHERE sent_at IS NULL AND (message_key = ANY($1::text[]) OR payload->>'customerId' = ANY($1::text[])) ORDER BY batch_id, part, seq`),
      q(`SELECT * FROM erasure_request WHERE erased_customer_ids && $1::uuid[] ORDER BY created_at`),
    ]);
    return {
      exportedAt: new Date().toISOString(),
      customerId,
      customers,
      identities,
      interactions,
      crmRecords,
      listeningItems,
      mergeSuggestions: suggestions,
      mergeHistory: history,
      dailySentiment: daily,
      crmWriteback: writeback,
      pendingOutbox: outbox,
      erasureRequests: erasures,
    };
  }
}
