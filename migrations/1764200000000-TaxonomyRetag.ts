import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Progress of the background job that re-tags stored interactions after a taxonomy edit. */
export class TaxonomyRetag1764200000000 implements MigrationInterface {
  name = 'TaxonomyRetag1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE retag_job (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        reason text NOT NULL,
        requested_by text NOT NULL,
        total integer NOT NULL DEFAULT 0,
        done integer NOT NULL DEFAULT 0,
        changed integer NOT NULL DEFAULT 0,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      );
      CREATE INDEX retag_job_unfinished_idx ON retag_job (created_at) WHERE status IN ('queued', 'running');
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE retag_job');
  }
}
