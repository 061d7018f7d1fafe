import { expect } from 'vitest';
import { ManualClock } from '../../src/shared/clock';
import { HubSpotServer, type HubSpotServerOptions } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { seedSalesforceContacts } from '../fixtures/crm/seed';
import { startTestApp, type TestApp } from './app';
import { crmEnv } from './crm-env';

/**
 * Both local CRMs, an app on a database of its own with an injected clock (the write-back queue
 * and the API budgets run on it), and `customers` customers synced from both: each has a
 * Salesforce Contact and a HubSpot contact with the same email. `speak` ingests one complaint by
 * each email given, so their customers are queued for write-back.
 */
export interface WritebackWorld {
  clock: ManualClock;
  sf: SalesforceServer;
  hs: HubSpotServer;
  app: TestApp;
  sfIds: string[];
  hsIds: string[];
  emails: string[];
  speak(who: string[]): Promise<void>;
}

export async function writebackWorld(opts: { label: string; customers: number; env?: Record<string, string>; hubspot?: HubSpotServerOptions }): Promise<WritebackWorld> {
  const clock = new ManualClock();
  const sf = new SalesforceServer();
  const hs = new HubSpotServer(opts.hubspot ?? {});
  await Promise.all([sf.start(), hs.start()]);
  const app = await startTestApp(
    { EARSHOT_ROLES: 'api', EARSHOT_PUBLIC_URL: 'http://localhost:4000', ...crmEnv(sf, hs), EARSHOT_CRM_MAX_RETRIES: '2', EARSHOT_CRM_WRITEBACK_LEASE_MS: '500', ...opts.env },
    opts.label,
    undefined,
    { clock },
  );
  const sfIds = seedSalesforceContacts(sf, opts.customers, { start: new Date(Date.now() - 86_400_000).toISOString() });
  const emails: string[] = [];
  const hsIds: string[] = [];
  for (const id of sfIds) {
    const c = sf.store.find('Contact', id)!;
    emails.push(String(c.Email));
    hsIds.push(hs.store.create('contacts', { email: String(c.Email), firstname: String(c.FirstName), lastname: String(c.LastName) }, Date.now() - 3_600_000).id);
  }
  await app.services.crmSync.client('hubspot')!.setup();
  await app.services.crmSync.run('salesforce');
  await app.services.crmSync.run('hubspot');
  let round = 0;
  const speak = async (who: string[]) => {
    round++;
    const msgs = who.map((email, i) => ({
      eventId: `${opts.label}-${round}-${i}`,
      source: 'email',
      externalId: `${opts.label}-${round}-${i}`,
      occurredAt: new Date(Date.now() - 60_000).toISOString(),
      direction: 'inbound',
      author: { displayName: email.split('@')[0], email },
      text: 'My parcel is late again and nobody answers. Terrible service, I want a refund.',
    }));
    const r = await app.services.ingest.ingestObjects(msgs, 'test');
    expect(r.rejected).toHaveLength(0);
  };
  return { clock, sf, hs, app, sfIds, hsIds, emails, speak };
}
