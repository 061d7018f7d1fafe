import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A listening item's "opened" history event is implied by the item row (`opened_at`, `source`,
 * `intent`, none of which changes after the item is created), so the history trigger no longer
 * writes one `listening_item_event` row per opening: it fires on UPDATE only, and the reader
 * (`itemEvents` in `src/listening-gap/listening-gap.repository.ts`) renders the opening from the
 * item. Saves one row and two index entries per new item on the ingest path.
 */
export class ImpliedOpenedEvent1766800000000 implements MigrationInterface {
  name = 'ImpliedOpenedEvent1766800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER listening_item_history ON listening_item;
      CREATE TRIGGER listening_item_history AFTER UPDATE ON listening_item
        FOR EACH ROW EXECUTE FUNCTION listening_item_history();
      DELETE FROM listening_item_event WHERE kind = 'opened';
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER listening_item_history ON listening_item;
      CREATE TRIGGER listening_item_history AFTER INSERT OR UPDATE ON listening_item
        FOR EACH ROW EXECUTE FUNCTION listening_item_history();
      INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
      SELECT id, 'opened', 'ingest', opened_at, jsonb_build_object('channel', source, 'intent', intent) FROM listening_item;
    `);
  }
}
