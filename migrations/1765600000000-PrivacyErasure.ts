import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AppError } from '../src/shared/app-error';

/**
 * Erasure (the audit row, with no PII, and the CRM clean-up queue that makes it crash-safe) and
 * retention (when an interaction's text and author details were removed).
 */
export class PrivacyErasure1765600000000 implements MigrationInterface {
  name = 'PrivacyErasure1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE erasure_request (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        -- the customer named in the request, and every customer row erased with it (merged-away ones)
        customer_id uuid NOT NULL,
        erased_customer_ids uuid[] NOT NULL,
        reason text NOT NULL,
        requested_by text NOT NULL,
        interactions integer NOT NULL,
        identities integer NOT NULL,
        crm_records integer NOT NULL,
        listening_items_closed integer NOT NULL,
        outbox_rows_removed integer NOT NULL,
        status text NOT NULL CHECK (status IN ('crm_pending', 'done')),
        crm_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz
      );
      CREATE INDEX erasure_request_customers_idx ON erasure_request USING gin (erased_customer_ids);

      -- What must still be cleared in a CRM: written-back sentiment fields of a record, or the
      -- customer's text in an escalation case (external_id = the listening item id, the case's key).
      CREATE TABLE crm_erasure (
        id bigserial PRIMARY KEY,
        erasure_id uuid NOT NULL REFERENCES erasure_request(id) ON DELETE CASCADE,
        system text NOT NULL CHECK (system IN ('salesforce', 'hubspot')),
        kind text NOT NULL CHECK (kind IN ('record', 'case')),
        object_type text NOT NULL,
        external_id text NOT NULL,
        origin text,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error text
      );
      CREATE INDEX crm_erasure_due_idx ON crm_erasure (next_attempt_at);

      ALTER TABLE interaction ADD COLUMN redacted_at timestamptz;
      CREATE INDEX interaction_retention_idx ON interaction (occurred_at) WHERE redacted_at IS NULL;
    `);
  }

  /**
   * Refuses while erasure records exist: dropping them loses the only proof that a person was
   * erased (the audit row an auditor asks for), makes a second request for the same customer
   * NOT_FOUND instead of the first request, and drops the CRM clean-ups still queued, so the
   * written-back fields and escalation cases of those people stay in the CRM for good. An
   * operator who means to lose them deletes them first (`DELETE FROM erasure_request`).
   */
  async down(q: QueryRunner): Promise<void> {
    const [held] = (await q.query(
      `SELECT (SELECT count(*) FROM erasure_request)::int AS requests, (SELECT count(*) FROM crm_erasure)::int AS crm_pending`,
    )) as { requests: number; crm_pending: number }[];
    if (held!.requests > 0) {
      throw new AppError(
        'CONFLICT',
        `${this.name} is not reverted: reverting it would drop the erasure records ` +
          `(${held!.requests} erasure requests, ${held!.crm_pending} CRM clean-ups still queued), the proof that those people were erased; nothing was changed. ` +
          `To revert it anyway, export them, then DELETE FROM erasure_request and run migrate --revert again.`,
      );
    }
    await q.query(`
      DROP INDEX interaction_retention_idx;
      ALTER TABLE interaction DROP COLUMN redacted_at;
      DROP TABLE crm_erasure;
      DROP TABLE erasure_request;
    `);
  }
}
