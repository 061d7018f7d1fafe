/**
 * npm run bench:subscriptions — how long an interaction takes from its ingest on one replica to a
 * graphql-ws subscriber connected to another (PostgreSQL LISTEN/NOTIFY between them).
 *
 * Each of N interactions is posted alone to replica A; the clock starts before the POST is sent,
 * so the figure is an upper bound of commit → client (it includes parsing, analysis and the
 * transaction). Also reported: event arrival minus the HTTP answer (a lower bound: the answer
 * leaves after the commit, and can arrive after the event).
 */
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, findTestPostgres, TEST_PG_ENV } from '../support/postgres';
import { wsClient } from '../support/ws-client';

const N = Number(process.env.BENCH_EVENTS ?? 300);

async function listening(p: EarshotProcess): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /"url":"(http:\/\/localhost:\d+)\/graphql"/.exec(p.output());
    if (m) return m[1]!;
    if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`earshot did not start: ${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const admin = await findTestPostgres();
  if (!admin) throw new Error('no PostgreSQL on 127.0.0.1:5432 (or TEST_DATABASE_URL) for the benchmark');
  process.env[TEST_PG_ENV] = admin;
  const database = await createTestDatabase('bench_subs');
  const env = { DATABASE_URL: database.url };
  // one after the other: the first start migrates the fresh database
  const a = spawnEarshot({ ...env, EARSHOT_ROLES: 'api,ingest' });
  let b: EarshotProcess | null = null;
  try {
    const urlA = await listening(a);
    b = spawnEarshot({ ...env, EARSHOT_ROLES: 'api' });
    const urlB = await listening(b);
    const client = wsClient(urlB);
    const arrived = new Map<string, number>();
    let notify: (() => void) | null = null;
    client.subscribe<{ interactionRecorded: { externalId: string } }>(
      { query: 'subscription { interactionRecorded(filter: { source: "chat" }) { externalId text customer { displayName } } }' },
      {
        next: (r) => {
          arrived.set(r.data!.interactionRecorded.externalId, performance.now());
          notify?.();
        },
        error: (e) => console.error('subscription error', e),
        complete: () => undefined,
      },
    );
    const post = (id: string) =>
      fetch(`${urlA}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: JSON.stringify({ source: 'chat', externalId: id, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: `bench${Number(id.split('-')[1]) % 50}` }, text: 'My parcel is late and nobody answers. Terrible.' }),
      });
    // warm-up until the subscription is live
    for (let i = 0; !arrived.has(`warm-${i - 1}`) || i === 0; i++) {
      await post(`warm-${i}`);
      await new Promise((r) => setTimeout(r, 100));
      if (i > 100) throw new Error('the subscription never became live');
    }
    const upper: number[] = [];
    const lower: number[] = [];
    for (let i = 0; i < N; i++) {
      const id = `e-${i}`;
      const t0 = performance.now();
      const res = await post(id);
      const t1 = performance.now();
      await res.arrayBuffer();
      const deadline = t0 + 10_000;
      while (!arrived.has(id)) {
        if (performance.now() > deadline) throw new Error(`event ${id} did not arrive within 10 s`);
        await new Promise<void>((r) => {
          notify = r;
          setTimeout(r, 50);
        });
      }
      const t = arrived.get(id)!;
      upper.push(t - t0);
      lower.push(t - t1);
    }
    upper.sort((x, y) => x - y);
    lower.sort((x, y) => x - y);
    console.log(`${N} interactions, one at a time, ingest on replica A → subscriber on replica B`);
    console.log(`request sent → event at client (upper bound of commit → client): p50 ${pct(upper, 50).toFixed(1)} ms, p99 ${pct(upper, 99).toFixed(1)} ms, max ${upper.at(-1)!.toFixed(1)} ms`);
    console.log(`HTTP answer → event at client (lower bound): p50 ${pct(lower, 50).toFixed(1)} ms, p99 ${pct(lower, 99).toFixed(1)} ms`);
    console.log(JSON.stringify({ events: N, p50Ms: +pct(upper, 50).toFixed(1), p99Ms: +pct(upper, 99).toFixed(1), targetP99Ms: 200 }));
    await client.dispose();
  } finally {
    await Promise.all([a.kill('SIGTERM'), b?.kill('SIGTERM')]);
    await database.drop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
