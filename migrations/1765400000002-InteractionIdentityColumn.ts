import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which identity attached an interaction becomes a column of the interaction, written by the
 * same insert: one row and two index entries fewer per ingested message. No foreign key (the
 * link is only read to move interactions back on an unmerge or unlink; an identity id is never
 * reused) and no index (those reads go through the customer's interactions).
 */
export class InteractionIdentityColumn1765400000002 implements MigrationInterface {
  name = 'InteractionIdentityColumn1765400000002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE interaction ADD COLUMN identity_id uuid;
      UPDATE interaction i SET identity_id = ii.identity_id FROM interaction_identity ii WHERE ii.interaction_id = i.id;
      DROP TABLE interaction_identity;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE interaction_identity (
        interaction_id uuid PRIMARY KEY,
        identity_id uuid NOT NULL REFERENCES customer_identity(id) ON DELETE CASCADE
      );
      CREATE INDEX interaction_identity_identity_idx ON interaction_identity (identity_id);
      INSERT INTO interaction_identity (interaction_id, identity_id)
      SELECT i.id, i.identity_id FROM interaction i JOIN customer_identity ci ON ci.id = i.identity_id;
      ALTER TABLE interaction DROP COLUMN identity_id;
    `);
  }
}
