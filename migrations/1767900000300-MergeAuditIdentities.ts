import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An erasure finds the merges that brought the erased person's identities into another customer
 * (their name stays in the merge's snapshot and in the merged-away customer row after an unlink or
 * an unmerge took the person out again) by the identity ids in the snapshot. Without this index it
 * read every merge and link audit row. Merges and links are written when customers join, not per
 * interaction, so the index costs ingest little.
 */
export class MergeAuditIdentities1767900000300 implements MigrationInterface {
  name = 'MergeAuditIdentities1767900000300';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX merge_audit_identities_idx ON merge_audit USING gin ((snapshot->'identities')) WHERE action IN ('merge', 'link')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX merge_audit_identities_idx`);
  }
}
