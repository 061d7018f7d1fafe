import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/shared/clock';
import { startTestApp, type TestApp } from '../support/app';

// Retention on the injected clock: EARSHOT_RETENTION_DAYS=30, interactions 29.5 days old; the daily
// job at start leaves them; one day later (clock moved, not slept) their text and author details go,
// their scores, intents, topics and rollups stay; progress is visible over GraphQL and /metrics.

const DAY = 86_400_000;

describe('retention', () => {
  const clock = new ManualClock();
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,sync', EARSHOT_RETENTION_DAYS: '30' }, 'retention', undefined, { clock });
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  it('removes texts and authors of interactions past the limit once a day, keeps scores and rollups', async () => {
    const task = app.services.retention.task;
    const old = new Date(clock.now() - 29.5 * DAY).toISOString();
    const recent = new Date(clock.now() - 2 * DAY).toISOString();
    const msgs = [1, 2, 3].map((n) => ({
      source: 'x', externalId: `ret-${n}`, occurredAt: n < 3 ? old : recent, direction: 'inbound', url: `https://x.com/keeper${n}/status/${n}`,
      author: { handle: `keeper${n}`, displayName: `Keeper ${n}` }, text: `Order ${n} arrived late and the courier was rude. Terrible delivery.`, metadata: { campaign: 'retention' },
    }));
    expect((await app.services.ingest.ingestObjects(msgs, 'test')).accepted).toBe(3);
    const rollups = await app.db.ds.query(`SELECT sum(interaction_count)::int AS n, sum(score_sum) AS s FROM department_sentiment_daily`);

    // the first run at start found nothing past 30 days
    await task.waitForRuns(1);
    expect(app.services.retention.status()).toMatchObject({ enabled: true, days: 30, redactedLastRun: 0 });
    const before = await app.gql<{ retentionStatus: { pending: number } }>('{ retentionStatus { pending } }');
    expect(before.data.retentionStatus.pending).toBe(0);

    clock.advance(DAY);
    await task.waitForRuns(2);
    const status = await app.gql<{ retentionStatus: Record<string, unknown> }>('{ retentionStatus { enabled days runs redactedLastRun redactedTotal pending lastCutoff } }');
    expect(status.data.retentionStatus).toMatchObject({ enabled: true, days: 30, runs: 2, redactedLastRun: 2, redactedTotal: 2, pending: 0 });
    const rows = await app.db.ds.query(
      `SELECT external_id, text, author_handle, author_display_name, url, metadata, sentiment_score, intent, customer_id IS NOT NULL AS linked,
              (SELECT count(*)::int FROM interaction_topic it WHERE it.interaction_id = i.id) AS topics,
              (i.identity_id IS NOT NULL)::int AS authors
         FROM interaction i ORDER BY external_id`,
    );
    expect(rows[0]).toMatchObject({ external_id: 'ret-1', text: '', author_handle: null, author_display_name: null, url: null, metadata: null, intent: 'complaint', linked: true, authors: 0 });
    expect(rows[0].sentiment_score).toBeLessThan(0);
    expect(rows[0].topics).toBeGreaterThan(0);
    expect(rows[1]).toMatchObject({ external_id: 'ret-2', text: '' });
    expect(rows[2]).toMatchObject({ external_id: 'ret-3', author_handle: 'keeper3', text: expect.stringContaining('Order 3') });
    expect(await app.db.ds.query(`SELECT sum(interaction_count)::int AS n, sum(score_sum) AS s FROM department_sentiment_daily`)).toEqual(rollups);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/earshot_retention_redacted_total 2/);
    expect(metrics).toMatch(/earshot_task_run_duration_seconds_count\{task="retention",outcome="ok"\} 2/);

    // a day later again: nothing is redone
    clock.advance(DAY);
    await task.waitForRuns(3);
    expect(app.services.retention.status()).toMatchObject({ redactedLastRun: 0, redactedTotal: 2 });
  });
});
