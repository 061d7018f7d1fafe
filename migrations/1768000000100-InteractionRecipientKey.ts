import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A company reply that names its customer (`metadata.recipientHandle`, a leading `@handle`) but
 * no message keeps whom it addresses, keyed as listening items keep their authors
 * (src/listening-gap/recipient.ts): a complaint that arrives after its reply (another partition,
 * a late feed) finds the reply on `interaction_recipient_idx`. Before, such a reply answered only
 * an item stored before it. Replies stored before this migration have no key and are not found
 * so; the column is null on every other row, so the index holds only these replies.
 */
export class InteractionRecipientKey1768000000100 implements MigrationInterface {
  name = 'InteractionRecipientKey1768000000100';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE interaction ADD COLUMN recipient_key text`);
    await q.query(`CREATE INDEX interaction_recipient_idx ON interaction (source, recipient_key, occurred_at) WHERE recipient_key IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX interaction_recipient_idx`);
    await q.query(`ALTER TABLE interaction DROP COLUMN recipient_key`);
  }
}
