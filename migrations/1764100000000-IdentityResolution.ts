import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Identity resolution (issue 5): how each identity was linked, which identity attached each
 * interaction (so unmerge and unlink can move interactions with their identities), person
 * profiles of CRM records for probabilistic matching, merge suggestions, and batch
 * re-resolution jobs.
 */
export class IdentityResolution1764100000000 implements MigrationInterface {
  name = 'IdentityResolution1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE customer_identity
        ADD COLUMN linked_by text NOT NULL DEFAULT 'deterministic'
          CONSTRAINT customer_identity_linked_by_check CHECK (linked_by IN ('deterministic', 'rule', 'manual')),
        ADD COLUMN link_score double precision,
        ADD COLUMN link_evidence jsonb;

      -- A side table rather than a column on interaction: the row is written while the customer
      -- is resolved, before the interaction itself, and needs no change to the insert path.
      CREATE TABLE interaction_identity (
        interaction_id uuid PRIMARY KEY,
        identity_id uuid NOT NULL REFERENCES customer_identity(id) ON DELETE CASCADE
      );
      CREATE INDEX interaction_identity_identity_idx ON interaction_identity (identity_id);

      -- The person as the CRM knows them (names, company, address, birthdate), the input of the
      -- probabilistic matcher; null for records that carry nothing to compare.
      ALTER TABLE crm_record ADD COLUMN person jsonb;
      CREATE INDEX crm_record_updated_idx ON crm_record (updated_at);

      CREATE TABLE merge_suggestion (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        customer_a_id uuid NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
        customer_b_id uuid NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
        -- identities survive merges and unmerges, customers do not: the pair is remembered by them
        identity_a_id uuid NOT NULL REFERENCES customer_identity(id) ON DELETE CASCADE,
        identity_b_id uuid NOT NULL REFERENCES customer_identity(id) ON DELETE CASCADE,
        pair_key text NOT NULL,
        score double precision,
        evidence jsonb NOT NULL DEFAULT '[]',
        reason text NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
        created_at timestamptz NOT NULL DEFAULT now(),
        decided_at timestamptz,
        decided_by text,
        CONSTRAINT merge_suggestion_pair_key UNIQUE (pair_key),
        CONSTRAINT merge_suggestion_two_sides CHECK (identity_a_id <> identity_b_id)
      );
      CREATE INDEX merge_suggestion_pending_idx ON merge_suggestion (created_at, id) WHERE status = 'pending';
      CREATE INDEX merge_suggestion_identity_a_idx ON merge_suggestion (identity_a_id);
      CREATE INDEX merge_suggestion_identity_b_idx ON merge_suggestion (identity_b_id);

      CREATE TABLE reresolution_job (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        total integer NOT NULL DEFAULT 0,
        done integer NOT NULL DEFAULT 0,
        merges integer NOT NULL DEFAULT 0,
        suggestions integer NOT NULL DEFAULT 0,
        auto_link_bits double precision NOT NULL,
        review_bits double precision NOT NULL,
        requested_by text NOT NULL,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        -- heartbeat: a job whose process died stops moving and is then failed by the next start
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      -- one job at a time: two would race for the same merges
      CREATE UNIQUE INDEX reresolution_job_active_idx ON reresolution_job ((true)) WHERE status IN ('queued', 'running');
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE reresolution_job;
      DROP TABLE merge_suggestion;
      DROP INDEX crm_record_updated_idx;
      ALTER TABLE crm_record DROP COLUMN person;
      DROP TABLE interaction_identity;
      ALTER TABLE customer_identity DROP COLUMN link_evidence, DROP COLUMN link_score, DROP COLUMN linked_by;
    `);
  }
}
