import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The analyzer's two decisions are stored with each interaction (issue 10): whether it is a
 * complaint (and the complaint model's probability), and whether the customer is unhappy
 * (negative, a complaint, or a churn threat). Null for rows stored before; a re-score fills them.
 */
export class InteractionComplaintUnhappy1766100000000 implements MigrationInterface {
  name = 'InteractionComplaintUnhappy1766100000000';

  async up(q: QueryRunner): Promise<void> {
    // Nullable columns without a default: PostgreSQL adds them without rewriting the table.
    await q.query(`
      ALTER TABLE interaction
        ADD COLUMN complaint boolean,
        ADD COLUMN complaint_probability double precision,
        ADD COLUMN unhappy boolean;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE interaction
        DROP COLUMN unhappy,
        DROP COLUMN complaint_probability,
        DROP COLUMN complaint;
    `);
  }
}
