import type { MigrationInterface, QueryRunner } from 'typeorm';

// Frozen copies of src/auth/pii.policy.ts as of this migration: a migration must do tomorrow
// what it did today, whatever the policy becomes.
const ADDRESS_SOURCES = ['sms', 'email', 'call', 'whatsapp', 'chat', 'ticket', 'survey'];
const sqlLooksLikePii = (column: string) =>
  `(${column} ~ '[^[:space:]@]+@[^[:space:]@]+\\.[^[:space:]@]+' OR ${column} ~ '(^|[^[:alnum:]_])\\d([[:space:]()./-]*\\d){6,}')`;

/**
 * Issue 11: customers created without a display name were named after their author's handle,
 * an email address or a phone number on sms, email and call, and `unlinkIdentity` named the
 * split-off customer after the email it moved. Such names become the customer's public social
 * handle where it has one, else null; the addresses stay where they belong, as identities.
 */
export class SafeDisplayNames1765200000000 implements MigrationInterface {
  name = 'SafeDisplayNames1765200000000';

  async up(q: QueryRunner): Promise<void> {
    const addressNetworks = ADDRESS_SOURCES;
    await q.query(
      `UPDATE customer c
          SET display_name = (
                SELECT ci.raw_value FROM customer_identity ci
                 WHERE ci.customer_id = c.id AND ci.kind = 'handle' AND NOT (ci.network = ANY($1::text[]))
                   AND ci.raw_value IS NOT NULL AND NOT ${sqlLooksLikePii('ci.raw_value')}
                 ORDER BY ci.created_at, ci.id LIMIT 1),
              updated_at = now()
        WHERE c.display_name IS NOT NULL AND ${sqlLooksLikePii('c.display_name')}`,
      [addressNetworks],
    );
  }

  async down(): Promise<void> {
    // Nothing to undo on purpose: putting addresses back as names would be the leak again; the
    // addresses themselves were never touched (customer_identity).
  }
}
