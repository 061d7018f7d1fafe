import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { RetentionClockError } from '../../src/privacy/retention.job';
import { startTestApp, type TestApp } from '../support/app';

// The host's clock is stepped far ahead while the database server's is right: a VM restored with a
// wrong clock, NTP misconfigured to a year ahead. The process clock (`Date`) of this test process
// is moved and runs on from there; PostgreSQL's `clock_timestamp()` is left alone, as on a
// database server that is another host.

const DAY = 86_400_000;

/** Sets the process clock `ms` away from now; it goes on running from there. */
function stepClock(ms: number): void {
  const to = Date.now() + ms;
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(to);
}

describe("retention with the host's clock ahead of the database server's", () => {
  let app: TestApp;

  afterEach(() => {
    vi.useRealTimers();
  });

  afterAll(async () => {
    vi.useRealTimers();
    await app?.close();
  });

  it('redacts nothing, logs both clocks and counts an error run; runs again once the clock is right', async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,sync', EARSHOT_RETENTION_DAYS: '30' }, 'clockahead');
    const task = app.services.retention.task;
    const msg = (id: string, ageDays: number) => ({
      source: 'x', externalId: id, occurredAt: new Date(Date.now() - ageDays * DAY).toISOString(), direction: 'inbound',
      author: { handle: `h-${id}` }, text: `Parcel ${id} arrived broken. Terrible.`,
    });
    expect((await app.services.ingest.ingestObjects([msg('ahead-old', 40), msg('ahead-fresh', 2)], 'test')).accepted).toBe(2);
    // on clocks that agree, a run redacts what is past 30 days
    await task.waitForRuns(1);
    expect(await task.runNow()).toBe(1);
    const text = async () =>
      Object.fromEntries(((await app.db.ds.query(`SELECT external_id, text FROM interaction ORDER BY external_id`)) as { external_id: string; text: string }[]).map((r) => [r.external_id, r.text]));
    expect(await text()).toEqual({ 'ahead-fresh': expect.stringContaining('Parcel'), 'ahead-old': '' });

    // a year ahead: before, the run redacted the two-day-old interaction (its cutoff was 335 days ahead of it)
    stepClock(365 * DAY);
    const refused = await task.runNow().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetentionClockError);
    expect((refused as RetentionClockError).aheadMs).toBeGreaterThan(364 * DAY);
    expect(task.lastError).toMatch(/ahead of the database server's/);
    expect(await text()).toEqual({ 'ahead-fresh': expect.stringContaining('Parcel'), 'ahead-old': '' });
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/earshot_task_run_duration_seconds_count\{task="retention",outcome="error"\} 1/);
    const status = async () => (await app.gql<{ retentionStatus: { redactedTotal: number; lastRefusal: string | null } }>('{ retentionStatus { redactedTotal lastRefusal } }')).data.retentionStatus;
    expect(await status()).toEqual({ redactedTotal: 1, lastRefusal: expect.stringMatching(/^retention refused to run: this host's clock .* is 315\d{5} s ahead of the database server's/) });

    // five minutes ahead is within the bound (hosts kept by NTP agree far closer): the run goes on
    vi.useRealTimers();
    stepClock(5 * 60_000);
    expect(await task.runNow()).toBe(0);

    // the clock put right: the next run goes on and still leaves the fresh interaction alone
    vi.useRealTimers();
    expect(await task.runNow()).toBe(0);
    expect(await text()).toEqual({ 'ahead-fresh': expect.stringContaining('Parcel'), 'ahead-old': '' });
    expect(task.errors).toBe(1);
    expect(await status()).toEqual({ redactedTotal: 1, lastRefusal: null });
  });
});
