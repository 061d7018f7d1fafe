import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { revertLastMigrationLocked } from '../../src/db/migrate';
import { toGlobalId } from '../../src/graphql/relay';
import { createLogger } from '../../src/shared/logger';
import { migrations } from '../../migrations';
import { message, startTestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// `migrate --revert` of PrivacyErasure drops erasure_request and crm_erasure: the proof that a
// person was erased, and the CRM clean-ups still queued. It is refused while erasure records
// exist, nothing changes, and it goes through once the operator has deleted them.

const log = createLogger('silent');
const NAME = 'PrivacyErasure1765600000000';

describe('migrate --revert of PrivacyErasure', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('erasurerevert');
    const app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'erasurerevert', db);
    try {
      const out = await app.services.ingest.ingestObjects([message(1, { externalId: 'rev-1', author: { handle: 'revert_me', email: 'revert.me@example.org' } })], 'test');
      expect(out.rejected).toEqual([]);
      const [{ customer_id: id }] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = 'rev-1'`)) as { customer_id: string }[];
      const r = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-5") { id } }`, { id: toGlobalId('Customer', id!) });
      expect(r.errors).toBeUndefined();
    } finally {
      await app.stop();
    }
  }, 120_000);
  afterAll(async () => {
    await db?.drop();
  });

  it('is refused while erasure records exist, changes nothing, and goes through once they are deleted', async () => {
    const d = await openDatabase(loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' }), log, { migrate: false });
    try {
      const names = migrations.map((M) => new M().name!);
      const target = names.indexOf(NAME);
      // the ones after it, with their data
      for (let k = names.length; k > target + 1; k--) expect(await revertLastMigrationLocked(d.ds, log)).toBe(names[k - 1]);
      const applied = async () => ((await d.ds.query(`SELECT name FROM migration ORDER BY timestamp DESC LIMIT 1`)) as { name: string }[])[0]!.name;
      expect(await applied()).toBe(NAME);

      await expect(revertLastMigrationLocked(d.ds, log)).rejects.toMatchObject({
        code: 'CONFLICT',
        message: `${NAME} is not reverted: reverting it would drop the erasure records (1 erasure requests, 0 CRM clean-ups still queued), the proof that those people were erased; nothing was changed. ` +
          'To revert it anyway, export them, then DELETE FROM erasure_request and run migrate --revert again.',
      });
      expect(await applied()).toBe(NAME);
      expect(await d.ds.query(`SELECT reason, status FROM erasure_request`)).toEqual([{ reason: 'DSR-5', status: 'done' }]);
      expect(await d.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE redacted_at IS NOT NULL`)).toEqual([{ n: 1 }]);

      await d.ds.query(`DELETE FROM erasure_request`);
      expect(await revertLastMigrationLocked(d.ds, log)).toBe(NAME);
      expect(await d.ds.query(`SELECT to_regclass('erasure_request') AS t`)).toEqual([{ t: null }]);
    } finally {
      await d.close();
    }
  }, 120_000);
});
