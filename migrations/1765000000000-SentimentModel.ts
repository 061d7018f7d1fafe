import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Models change, stored data follows (issue 10): each interaction records the model that scored
 * it, and `rescore_job` keeps the progress of re-scoring stored interactions with the current one.
 */
export class SentimentModel1765000000000 implements MigrationInterface {
  name = 'SentimentModel1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      -- null: scored before models were recorded (by the lexicon analyzer of the time); a re-score fills it
      ALTER TABLE interaction ADD COLUMN sentiment_model text;
      -- a re-score that finds an old message newly unhappy looks for replies already in its thread
      CREATE INDEX interaction_thread_idx ON interaction (source, thread_key) WHERE thread_key IS NOT NULL;

      CREATE TABLE rescore_job (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        requested_by text NOT NULL,
        -- listening items are opened only for messages that happened at or after this (null: all)
        open_items_since timestamptz,
        total integer NOT NULL DEFAULT 0,
        done integer NOT NULL DEFAULT 0,
        changed integer NOT NULL DEFAULT 0,
        items_opened integer NOT NULL DEFAULT 0,
        customers_updated integer NOT NULL DEFAULT 0,
        -- keyset cursor: the last interaction id done, committed with the batch it ends
        last_id uuid,
        -- texts per model that scored them in this run, e.g. {"acme-v2": 1200, "earshot-lexicon-v1": 3}
        -- (the built-in one counts the fallbacks when a model server failed)
        models jsonb NOT NULL DEFAULT '{}',
        phase text NOT NULL DEFAULT 'interactions' CHECK (phase IN ('interactions', 'rollups', 'done')),
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      -- one job at a time: two would fight over the same rows and rollups
      CREATE UNIQUE INDEX rescore_job_active_idx ON rescore_job ((true)) WHERE status IN ('queued', 'running');
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE rescore_job;
      DROP INDEX interaction_thread_idx;
      ALTER TABLE interaction DROP COLUMN sentiment_model;
    `);
  }
}
