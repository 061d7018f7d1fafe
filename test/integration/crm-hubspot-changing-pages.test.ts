import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { HubSpotCrmClient } from '../../src/crm/hubspot/hubspot.client';
import { createLogger } from '../../src/shared/logger';
import { seedHubSpotContacts } from '../fixtures/crm/seed';
import { HubSpotServer } from '../crm-servers/hubspot/server';

// HubSpot contacts modified, archived or merged in HubSpot while Earshot pages through a search.
// HubSpot's search `after` is an offset into a result set searched anew for every page, and a
// contact changed during the walk leaves the window (its last-modified time passes the window's
// end): every later contact moves up one place, and the first contact of the next page was never
// read. The cursor passed it, so no later run read it either, until someone changed it again.
// The adapter alone (real client, real local server, a sink that collects): the subject is paging.

const B = Date.parse('2026-11-02T08:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
let server: HubSpotServer;

afterEach(async () => {
  await server?.stop();
});

/** Pulls contacts from the cursor; what reached the sink, by id (times seen), and the cursors. */
async function collect(cursor: string | null = null) {
  const config = loadConfig({ EARSHOT_HUBSPOT_TOKEN: server.options.privateAppTokens[0]!, EARSHOT_HUBSPOT_BASE_PATH: server.url, EARSHOT_HUBSPOT_OBJECTS: 'contacts', EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0', EARSHOT_HUBSPOT_SEARCH_PER_SECOND: '25' });
  const client = new HubSpotCrmClient(config.crm.hubspot!, config.crm, createLogger('silent'), { searchLagMs: 0 });
  const seen = new Map<string, number>();
  let last: string | null = null;
  await client.pull('contacts', {
    cursor: cursor ? { modstamp: cursor, id: '' } : null,
    mode: 'incremental',
    deletedSince: null,
    known: async () => new Map(),
    sink: async (b) => {
      for (const r of b.records) seen.set(r.externalId, (seen.get(r.externalId) ?? 0) + 1);
      if (b.cursor) last = b.cursor.modstamp;
    },
  });
  return { seen, cursor: last as string | null };
}

/** While the first search page is answered, `change` runs (as a HubSpot user would, mid-walk). */
function duringFirstPage(change: () => void): void {
  let done = false;
  server.faults.enqueue({
    match: (req) => req.path.endsWith('/contacts/search'),
    rewrite: (reply) => {
      if (!done) {
        // the change is stamped after the run's start, never in its millisecond (then it would
        // still be inside the run's window): the clock moves on by one first
        const t = Date.now();
        while (Date.now() === t);
        change();
      }
      done = true;
      return reply;
    },
  });
}

describe('HubSpot contacts changing while their search pages are read', () => {
  // `later`: the contacts the change gave a time past the run's window, read by the next run
  it.each([
    ['modified', (ids: string[]) => server.store.update('contacts', server.store.get('contacts', ids[3]!)!, { firstname: 'Renamed' }), () => []],
    ['archived', (ids: string[]) => server.store.archive('contacts', server.store.get('contacts', ids[3]!)!), () => []],
    ['modified, with the rest of its page (a bulk edit),', (ids: string[]) => ids.slice(0, 200).forEach((id) => server.store.update('contacts', server.store.get('contacts', id)!, { lifecyclestage: 'customer' })), () => []],
    ['merged into a contact of the second page', (ids: string[]) => void server.store.merge('contacts', ids[240]!, ids[3]!), (ids: string[]) => [ids[240]!]],
  ] as const)('a contact of the first page %s meanwhile: no contact of a later page is skipped, now or in the next run', async (_what, change, later) => {
    server = new HubSpotServer({ searchPerSecond: 25 });
    await server.start();
    const ids = seedHubSpotContacts(server, 450, { start: iso(B), stepMs: 1000 });
    // The portal's clock is the wall clock: the change gets a time the next run's window holds.
    // (It ran ahead once, and a run that ended within those milliseconds of the change missed it.)
    expect(server.store.now()).toBeLessThanOrEqual(Date.now());
    server.resetStats();
    duringFirstPage(() => change(ids));
    const first = await collect();
    // before: the 201st contact (the first of the second page) was never read, nor by a later run
    expect(ids.filter((id) => !first.seen.has(id))).toEqual(later(ids));
    // the cost: the second page asked again (3 searches when nothing changes)
    expect(server.stats().byEndpoint['POST /crm/v3/objects/:type/search']).toBe(4);
    // the next run reads what changed (the modified or merged contact), nothing is left behind
    const next = await collect(first.cursor);
    expect(ids.filter((id) => !first.seen.has(id) && !next.seen.has(id))).toEqual([]);
  });

  it('reads each contact once when nothing changes during the walk', async () => {
    server = new HubSpotServer({ searchPerSecond: 25 });
    await server.start();
    const ids = seedHubSpotContacts(server, 450, { start: iso(B), stepMs: 1000 });
    server.resetStats();
    const { seen } = await collect();
    expect(seen.size).toBe(450);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(ids.every((id) => seen.has(id))).toBe(true);
    expect(server.stats().byEndpoint['POST /crm/v3/objects/:type/search']).toBe(3);
  });
});
