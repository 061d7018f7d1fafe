import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Live events for GraphQL subscriptions across replicas: statement-level triggers NOTIFY
 * `earshot_events` with the ids of new interactions, of listening items inserted or changed, and
 * of customers whose sentiment changed. NOTIFY is delivered at commit only (never for a rolled-back
 * write) and to every replica that LISTENs; payloads carry ids only (at most 150 per
 * notification, well under PostgreSQL's 8,000-byte limit) and the listener loads the rows.
 */
export class LiveEvents1765500000000 implements MigrationInterface {
  name = 'LiveEvents1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION earshot_notify_ids(kind text, ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
      DECLARE i integer := 1; n integer := coalesce(array_length(ids, 1), 0);
      BEGIN
        WHILE i <= n LOOP
          PERFORM pg_notify('earshot_events', json_build_object('s', current_schema(), 't', kind, 'ids', ids[i:i + 149])::text);
          i := i + 150;
        END LOOP;
      END $$;

      CREATE FUNCTION earshot_live_interaction() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM earshot_notify_ids('interaction', ARRAY(SELECT id FROM new_rows ORDER BY occurred_at, id));
        RETURN NULL;
      END $$;
      CREATE TRIGGER earshot_live_interaction AFTER INSERT ON interaction
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION earshot_live_interaction();

      CREATE FUNCTION earshot_live_listening_item() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM earshot_notify_ids('listening_item', ARRAY(SELECT id FROM new_rows ORDER BY id));
        RETURN NULL;
      END $$;
      CREATE TRIGGER earshot_live_listening_item_insert AFTER INSERT ON listening_item
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION earshot_live_listening_item();
      CREATE TRIGGER earshot_live_listening_item_update AFTER UPDATE ON listening_item
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION earshot_live_listening_item();

      CREATE FUNCTION earshot_live_customer_sentiment() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM earshot_notify_ids('customer_sentiment', ARRAY(
          SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
           WHERE n.merged_into_id IS NULL
             AND (o.sentiment_score IS DISTINCT FROM n.sentiment_score
               OR o.sentiment_label IS DISTINCT FROM n.sentiment_label
               OR o.sentiment_trend IS DISTINCT FROM n.sentiment_trend
               OR o.interaction_count IS DISTINCT FROM n.interaction_count)
           ORDER BY n.id));
        RETURN NULL;
      END $$;
      CREATE TRIGGER earshot_live_customer_sentiment AFTER UPDATE ON customer
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION earshot_live_customer_sentiment();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER earshot_live_customer_sentiment ON customer;
      DROP FUNCTION earshot_live_customer_sentiment();
      DROP TRIGGER earshot_live_listening_item_update ON listening_item;
      DROP TRIGGER earshot_live_listening_item_insert ON listening_item;
      DROP FUNCTION earshot_live_listening_item();
      DROP TRIGGER earshot_live_interaction ON interaction;
      DROP FUNCTION earshot_live_interaction();
      DROP FUNCTION earshot_notify_ids(text, uuid[]);
    `);
  }
}
