import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../src/graphql/relay';
import { startTestApp, type TestApp } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { waitFor } from '../support/kafka-fixtures';
import { waitForLockWait } from '../support/postgres';

// A re-resolution job whose runner is gone must not block the next one. Before, the job row stayed
// 'running' until it had made no progress for 15 minutes, and every startReresolution answered
// CONFLICT meanwhile (measured: still CONFLICT 20 s after the runner's process was SIGKILLed).
// Liveness is now the runner's advisory lock session: a start that gets the lock replaces the orphan
// at once. A runner that lost only its lock session (its process lives on) must then stop without
// merging or counting anything a second time.

const ADMIN = 'admin-key-0123456789';
// thresholds so high that CRM intake links nothing by score: the pair is left to the re-resolution
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_IDENTITY_AUTO_LINK_BITS: '90', EARSHOT_IDENTITY_REVIEW_BITS: '90' };
const as = { 'x-api-key': ADMIN };
const RUNNER_LOCK = 7_041_979;
const START = 'mutation S($a: Float, $r: Float) { startReresolution(autoLinkBits: $a, reviewBits: $r) { id status } }';
const THRESHOLDS = { a: 1, r: 0 };

type JobRow = { id: string; status: string; merges: number; suggestions: number; error: string | null };

/** Two CRM profiles of one person (same name, city, birth date; different emails) in two customers: one auto link at a low threshold. */
async function twoProfilesOfOnePerson(app: TestApp, n = 0, name = ['Augusta', 'Kingsbury']): Promise<[string, string]> {
  const person = { givenName: name[0], surname: name[1], city: 'Ockham', dateOfBirth: `18${15 + n}-12-10` };
  const sf = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
    { externalId: `00300000000090${n}AAA`, person, identities: [{ kind: 'email', value: `${name[0]}@work${n}.example` }] },
  ]);
  const hs = await app.services.identity.ingestCrmRecords('hubspot', 'contact', [{ externalId: `900${n}`, person, identities: [{ kind: 'email', value: `${name[0]}@home${n}.example` }] }]);
  const pair: [string, string] = [sf.customerIds[0]!, hs.customerIds[0]!];
  expect(pair[0]).not.toBe(pair[1]);
  return pair;
}

/** A transaction of the test's that holds both customers' rows: a runner's link transaction waits on it. */
async function holdCustomers(url: string, ids: string[]): Promise<Client> {
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query('BEGIN');
  await c.query('SELECT id FROM customer WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', [ids]);
  return c;
}

async function jobs(app: TestApp): Promise<JobRow[]> {
  return (await app.db.ds.query(`SELECT id, status, merges, suggestions, error FROM reresolution_job ORDER BY created_at`)) as JobRow[];
}

async function finished(app: TestApp, id: string): Promise<JobRow> {
  return waitFor(
    `re-resolution job ${id} to finish`,
    async () => {
      const [row] = (await app.db.ds.query(`SELECT id, status, merges, suggestions, error FROM reresolution_job WHERE id = $1`, [id])) as JobRow[];
      return row && ['succeeded', 'failed'].includes(row.status) ? row : null;
    },
    60_000,
    50,
  );
}

/** The merges the audit log holds between the two customers' lines (each merge is one entry). */
async function mergesBetween(app: TestApp, pair: string[]): Promise<number> {
  const [{ n }] = (await app.db.ds.query(
    `SELECT count(*)::int AS n FROM merge_audit WHERE action = 'merge' AND undone_at IS NULL AND ARRAY[survivor_id, merged_id] <@ $1::uuid[]`,
    [pair],
  )) as { n: number }[];
  return n;
}

describe('re-resolution after its runner is gone', () => {
  let app: TestApp | null = null;
  let other: TestApp | null = null;
  let child: EarshotProcess | null = null;
  let holder: Client | null = null;
  afterAll(async () => {
    await holder?.end().catch(() => undefined);
    await child?.kill('SIGKILL').catch(() => undefined);
    await other?.stop().catch(() => undefined);
    await app?.close().catch(() => undefined);
  });

  it('accepts a new job at once after the runner process is SIGKILLed mid-job; the new job merges only what the dead one had not', async () => {
    app = await startTestApp(KEYS, 'reresolvekill');
    const pairs = [await twoProfilesOfOnePerson(app, 0), await twoProfilesOfOnePerson(app, 1, ['Bertram', 'Oakhurst'])];
    // The job applies its clusters in the order of their first CRM record: it merges the first pair
    // (committed and counted), then waits on the second, whose customers the test holds.
    const [{ customer_id: firstCustomer }] = (await app.db.ds.query(`SELECT customer_id FROM crm_record WHERE person IS NOT NULL ORDER BY id LIMIT 1`)) as { customer_id: string }[];
    const [early, late] = pairs[0]!.includes(firstCustomer!) ? [pairs[0]!, pairs[1]!] : [pairs[1]!, pairs[0]!];
    holder = await holdCustomers(app.database.url, late);

    // The runner: the compiled service in a child process, killed like an OOM or a lost node would.
    child = spawnEarshot({ ...KEYS, DATABASE_URL: app.database.url, EARSHOT_ROLES: 'api' });
    const url = await child.listening(60_000);
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...as }, body: JSON.stringify({ query: START, variables: THRESHOLDS }) });
    const body = (await res.json()) as { data: { startReresolution: { id: string } }; errors?: unknown };
    expect(body.errors).toBeUndefined();
    const crashedId = fromGlobalId(body.data.startReresolution.id, 'ReresolutionJob').id;
    // mid-job: running, the first pair merged, its next link transaction waiting on the customers the test holds
    await waitFor('the job to merge the first pair', async () => (await jobs(app!)).some((j) => j.id === crashedId && j.status === 'running') && (await mergesBetween(app!, early)) === 1, 30_000, 20).catch(async (e) => {
      throw new Error(`${(e as Error).message}; jobs: ${JSON.stringify(await jobs(app!))}; runner: ${child?.output().slice(-3000)}`);
    });
    await waitForLockWait((sql, params) => app!.db.ds.query(sql, params), 'the runner waits on the customers', { exceptPid: (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid });
    await child.kill('SIGKILL');
    const diedAt = Date.now();
    child = null;

    // The operator asks again: refused while the dead runner's job blocks it.
    let refusals = 0;
    const replacement = await waitFor(
      'a new re-resolution to be accepted after the runner died',
      async () => {
        const r = await app!.gql<{ startReresolution: { id: string } }>(START, THRESHOLDS, as);
        if (r.errors?.[0]?.extensions?.code === 'CONFLICT') {
          refusals++;
          return null;
        }
        expect(r.errors).toBeUndefined();
        return fromGlobalId(r.data.startReresolution.id, 'ReresolutionJob').id;
      },
      20_000,
      100,
    );
    const acceptedAfter = (Date.now() - diedAt) / 1000;
    console.log(`re-resolution accepted ${acceptedAfter.toFixed(2)} s after its runner was SIGKILLed (${refusals} CONFLICT answers before)`);
    expect(acceptedAfter).toBeLessThan(5);
    const crashedStatus = await app.gql<{ reresolutionJob: { status: string; error: string | null } }>(`query J($id: ID!) { reresolutionJob(id: $id) { status error } }`, { id: body.data.startReresolution.id }, as);
    expect(crashedStatus.data.reresolutionJob).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/runner stopped/) });

    await holder.query('ROLLBACK');
    // The new job makes only the merge the dead one had not: each pair merged once, each merge counted once.
    const done = await finished(app, replacement);
    expect(done).toMatchObject({ status: 'succeeded', merges: 1 });
    const crashed = (await jobs(app)).find((j) => j.id === crashedId)!;
    expect(crashed).toMatchObject({ status: 'failed', merges: 1 });
    expect(crashed.error).toMatch(/runner stopped/);
    expect(await mergesBetween(app, early)).toBe(1);
    expect(await mergesBetween(app, late)).toBe(1);
    // one job active at most, and the next start works as before
    const again = await app.gql<{ startReresolution: { id: string } }>(START, THRESHOLDS, as);
    expect(again.errors).toBeUndefined();
    expect((await finished(app, fromGlobalId(again.data.startReresolution.id, 'ReresolutionJob').id)).merges).toBe(0);
    await holder.end();
    holder = null;
    await app.close();
    app = null;
  }, 120_000);

  it('answers CONFLICT while the runner lives; when only its lock session ends, the job is replaced and the old runner stops without merging or counting twice', async () => {
    app = await startTestApp(KEYS, 'reresolvelocklost');
    other = await startTestApp(KEYS, 'reresolvelocklost', app.database);
    const pair = await twoProfilesOfOnePerson(app);
    holder = await holdCustomers(app.database.url, pair);

    const first = await app.gql<{ startReresolution: { id: string } }>(START, THRESHOLDS, as);
    expect(first.errors).toBeUndefined();
    const firstId = fromGlobalId(first.data.startReresolution.id, 'ReresolutionJob').id;
    await waitForLockWait((sql, params) => app!.db.ds.query(sql, params), 'the runner waits on the customers', { exceptPid: (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid });

    // a live runner: the other replica refuses, naming the job
    const refused = await other.gql(START, THRESHOLDS, as);
    expect(refused.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(refused.errors?.[0]?.message).toMatch(/already running/);

    // the runner's lock session ends (an idle-session reaper, a proxy), its process goes on
    const killed = await holder.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, [RUNNER_LOCK]);
    expect(killed.rows).toEqual([{ ok: true }]);
    // its status, asked of either replica, no longer says RUNNING once PostgreSQL has ended that session
    const status = await waitFor(
      'the job whose runner lost its lock reported failed',
      async () => {
        const r = await other!.gql<{ reresolutionJob: { status: string; error: string | null } }>(`query J($id: ID!) { reresolutionJob(id: $id) { status error } }`, { id: first.data.startReresolution.id }, as);
        return r.data.reresolutionJob.status === 'FAILED' ? r.data.reresolutionJob : null;
      },
      10_000,
      50,
    );
    expect(status.error).toMatch(/runner stopped/);
    const second = await waitFor(
      'the other replica to accept a job',
      async () => {
        const r = await other!.gql<{ startReresolution: { id: string } }>(START, THRESHOLDS, as);
        return r.errors ? null : fromGlobalId(r.data.startReresolution.id, 'ReresolutionJob').id;
      },
      10_000,
      50,
    );

    // The first runner's link transaction goes on first once the customers are free.
    await holder.query('ROLLBACK');
    const done = await finished(other, second);
    await app.services.reresolution.drain();
    expect(done).toMatchObject({ status: 'succeeded', merges: 1 });
    const old = (await jobs(other)).find((j) => j.id === firstId)!;
    expect(old.status).toBe('failed');
    expect(old.merges).toBe(0);
    expect(await mergesBetween(other, pair)).toBe(1);
    await holder.end();
    holder = null;
  }, 120_000);
});
