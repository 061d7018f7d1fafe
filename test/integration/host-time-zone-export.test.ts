import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';

// A day is a UTC day in Earshot, whatever the host's time zone. A PostgreSQL `date` (the daily
// rollups' `day`, the customer's `sentiment_ref`) reached JavaScript as the midnight of the
// host's zone (node-postgres' default), so the data export named another instant (and, east of
// UTC, the day before) on a host with TZ set: under Pacific/Kiritimati (UTC+14) the day
// 2026-11-03 was exported as 2026-11-02T10:00:00.000Z. Node applies a change of process.env.TZ at
// once, so this test runs the service in-process as if on such a host.

const ZONES = ['Pacific/Kiritimati', 'Pacific/Pago_Pago', 'America/Santiago'];

type Export = { dailySentiment: { day: string; interaction_count: number }[]; customers: { id: string; sentiment_ref: string | null }[] };

describe('the customer data export on a host whose time zone is not UTC', () => {
  let app: TestApp;
  const hostZone = process.env.TZ;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'hosttz');
  }, 60_000);

  afterAll(async () => {
    if (hostZone === undefined) delete process.env.TZ;
    else process.env.TZ = hostZone;
    await app?.close();
  });

  it.each(ZONES.map((zone, i) => [zone, i] as const))('names each UTC day as its UTC midnight under TZ=%s', async (zone, i) => {
    process.env.TZ = zone;
    expect(new Date(2026, 10, 3).getTime()).not.toBe(Date.UTC(2026, 10, 3)); // the zone took effect
    const handle = `hosttz${i}`;
    // 22:30 and 23:59 UTC on the 3rd, 00:10 UTC on the 4th: already the 4th in Kiritimati, still the 3rd in Pago Pago
    const at = ['2026-11-03T22:30:00Z', '2026-11-03T23:59:00Z', '2026-11-04T00:10:00Z'];
    const msgs = at.map((occurredAt, n) => message(n, { eventId: `${handle}-${n}`, externalId: `${handle}-${n}`, occurredAt, author: { handle, displayName: 'Zone Test' } }));
    expect((await app.services.ingest.ingestObjects(msgs, 'test')).rejected).toEqual([]);
    const [row] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [`${handle}-0`])) as { customer_id: string }[];
    const id = Buffer.from(`Customer:${row!.customer_id}`).toString('base64url');

    const res = await app.gql<{ customerDataExport: Export }>('query($id: ID!) { customerDataExport(id: $id) }', { id });
    expect(res.errors).toBeUndefined();
    const exported = res.data.customerDataExport;
    expect(exported.dailySentiment.map((d) => [d.day, d.interaction_count])).toEqual([
      ['2026-11-03T00:00:00.000Z', 2],
      ['2026-11-04T00:00:00.000Z', 1],
    ]);
    expect(exported.customers.map((c) => c.sentiment_ref)).toEqual(['2026-11-04T00:00:00.000Z']);
  });
});
