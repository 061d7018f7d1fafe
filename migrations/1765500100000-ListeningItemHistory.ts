import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The history of each listening item (opened, reopened, replied, marked responded, escalated,
 * assigned, closed; by whom and when), written by a trigger on `listening_item` so that every
 * writer — the ingest pipeline, people through the API, the escalation job, the CRM sync — is
 * recorded without knowing about it. People are named through the transaction-local setting
 * `earshot.actor`, which the API's mutations set; other writers are named by what they are.
 */
export class ListeningItemHistory1765500100000 implements MigrationInterface {
  name = 'ListeningItemHistory1765500100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE listening_item_event (
        id bigserial PRIMARY KEY,
        item_id uuid NOT NULL REFERENCES listening_item(id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('opened', 'reopened', 'replied', 'responded', 'escalated', 'assigned', 'closed')),
        actor text,
        at timestamptz NOT NULL DEFAULT now(),
        detail jsonb
      );
      CREATE INDEX listening_item_event_item_idx ON listening_item_event (item_id, at, id);

      CREATE FUNCTION listening_item_history() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE person text := nullif(current_setting('earshot.actor', true), '');
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
          VALUES (NEW.id, 'opened', 'ingest', NEW.opened_at, jsonb_build_object('channel', NEW.source, 'intent', NEW.intent));
          RETURN NULL;
        END IF;
        IF OLD.status <> 'open' AND NEW.status = 'open' THEN
          INSERT INTO listening_item_event (item_id, kind, actor, at) VALUES (NEW.id, 'reopened', 'ingest', NEW.last_opened_at);
        ELSIF OLD.status = 'open' AND NEW.status = 'answered' THEN
          INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
          VALUES (NEW.id, CASE WHEN NEW.responded_by = 'reply' THEN 'replied' ELSE 'responded' END,
                  coalesce(person, CASE NEW.responded_by WHEN 'reply' THEN 'reply' WHEN 'crm' THEN 'crm' ELSE 'person' END),
                  coalesce(NEW.closed_at, now()), jsonb_build_object('respondedBy', NEW.responded_by));
        ELSIF OLD.status <> 'closed' AND NEW.status = 'closed' THEN
          INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
          VALUES (NEW.id, 'closed', coalesce(person, CASE WHEN NEW.close_reason = 'crm_case_closed' THEN 'crm' ELSE 'system' END),
                  coalesce(NEW.closed_at, now()), jsonb_build_object('reason', NEW.close_reason));
        END IF;
        IF OLD.escalated_at IS NULL AND NEW.escalated_at IS NOT NULL THEN
          INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
          VALUES (NEW.id, 'escalated', 'escalation', NEW.escalated_at,
                  jsonb_build_object('system', NEW.escalation_system, 'caseId', NEW.escalation_case_id));
        END IF;
        IF OLD.assigned_department_id IS DISTINCT FROM NEW.assigned_department_id
           OR (OLD.assigned_user IS DISTINCT FROM NEW.assigned_user AND NOT (OLD.assigned_user IS NULL AND NEW.status <> OLD.status)) THEN
          INSERT INTO listening_item_event (item_id, kind, actor, detail)
          VALUES (NEW.id, 'assigned', coalesce(person, 'system'), jsonb_build_object(
            'department', (SELECT name FROM department WHERE id = NEW.assigned_department_id), 'user', NEW.assigned_user));
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER listening_item_history AFTER INSERT OR UPDATE ON listening_item
        FOR EACH ROW EXECUTE FUNCTION listening_item_history();

      -- items opened before this migration start their history with what is known
      INSERT INTO listening_item_event (item_id, kind, actor, at, detail)
      SELECT id, 'opened', 'ingest', opened_at, jsonb_build_object('channel', source, 'intent', intent) FROM listening_item;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER listening_item_history ON listening_item;
      DROP FUNCTION listening_item_history();
      DROP TABLE listening_item_event;
    `);
  }
}
