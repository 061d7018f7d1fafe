import net from 'node:net';
import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { kafkaEnv, kafkaNames, testKafka, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase } from '../support/postgres';

// A start that fails at its last step (the metrics port taken) after every role had started:
// startApp rejects and has closed what it had started, so nothing holds the process. Before, the
// main port stayed listening, the pools kept their connections, the Kafka consumer stayed in its
// group and the background jobs' timers ran on; main.ts ended the process a second after its
// message whatever was still running.

/** What keeps a Node.js process alive, by kind (timers, listening servers, sockets, workers). */
function handles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) if (kind !== 'TTYWrap' && kind !== 'FSReqCallback') counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** The kinds of which there are more now than in `before`, with how many more. */
function added(before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of handles()) if (n > (before.get(kind) ?? 0)) out[kind] = n - (before.get(kind) ?? 0);
  return out;
}

describe('a start that fails half-way', () => {
  const names = kafkaNames('startfail');
  const kafka = testKafka();

  afterAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('rejects with the cause and leaves no connection, server, consumer or timer of its own behind', async () => {
    const database = await createTestDatabase('startfail');
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const admin = new Client({ connectionString: process.env.EARSHOT_TEST_PG_ADMIN_URL });
    await admin.connect();
    try {
      const config = loadConfig({
        NODE_ENV: 'test',
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: database.url,
        EARSHOT_ROLES: 'api,ingest,sync',
        EARSHOT_METRICS_PORT: String(port),
        ...kafkaEnv(names),
      });
      const before = handles();
      await expect(startApp(config, createLogger('silent'))).rejects.toMatchObject({ code: 'EADDRINUSE', port });

      // nothing of the app's own: the caller's handles are back to what they were (a socket
      // being closed may take a turn of the event loop to go away; a handle kept never does)
      await waitFor('the failed start\'s handles to go', async () => Object.keys(added(before)).length === 0, 10_000, 50).catch((e: Error) => {
        throw new Error(`${e.message}; still there: ${JSON.stringify(added(before))}`);
      });
      // no session of this app's database stays open (the main, ingest and jobs pools, the LISTEN session, the relay's)
      const sessions = async () => (await admin.query<{ application_name: string }>('SELECT application_name FROM pg_stat_activity WHERE datname = $1', [database.name])).rows.map((r) => r.application_name);
      await waitFor('the sessions to end', async () => (await sessions()).length === 0, 10_000, 50).catch(async (e: Error) => {
        throw new Error(`${e.message}; still open: ${JSON.stringify(await sessions())}`);
      });
      // the consumer left its group (it joined before the metrics listener was tried)
      const kadmin = kafka.admin();
      await kadmin.connect();
      try {
        const { groups } = await kadmin.describeGroups([names.group]);
        expect(groups[0]!.members).toEqual([]);
      } finally {
        await kadmin.disconnect();
      }
    } finally {
      await admin.end();
      await new Promise((resolve) => taken.close(resolve));
      await database.drop();
    }
  }, 120_000);
});
