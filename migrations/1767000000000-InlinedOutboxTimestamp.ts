import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `outbox_ts` (the events' timestamps as `2026-12-01T19:31:34.129Z`) was declared IMMUTABLE around
 * `to_char`, which is STABLE. PostgreSQL inlines a SQL function only when its body is no more
 * volatile than the function claims, so every call ran as a statement of its own: 3.3 per
 * interaction in `bench:ingest` (333,340 calls for 100,000 interactions in pg_stat_statements). Declared STABLE, as
 * its body is, it is inlined into the `outbox` view: rendering 30,000 interactions and 20,000
 * customer summaries took 1.14–1.22 s instead of 1.30–1.48 s (three runs each). No index or constraint uses it (one would
 * need IMMUTABLE).
 */
export class InlinedOutboxTimestamp1767000000000 implements MigrationInterface {
  name = 'InlinedOutboxTimestamp1767000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER FUNCTION outbox_ts(timestamptz) STABLE`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER FUNCTION outbox_ts(timestamptz) IMMUTABLE`);
  }
}
