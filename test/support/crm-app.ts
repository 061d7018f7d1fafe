import type { Clock } from '../../src/shared/clock';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from './app';
import { crmEnv } from './crm-env';

export interface WithBothCrms {
  sf: SalesforceServer;
  hs: HubSpotServer;
  app: TestApp;
  /** stops the app, then both servers */
  close(): Promise<void>;
}

/**
 * Both local CRM servers, and a test's Earshot (the API role, a public URL for deep links) syncing
 * with them, its HubSpot properties set up: the set-up of the tests that follow records through
 * both CRMs. `objects` chooses what each one syncs (crmEnv).
 */
export async function startWithBothCrms(label: string, opts: { clock?: Clock; objects?: { salesforce?: string; hubspot?: string } } = {}): Promise<WithBothCrms> {
  const sf = new SalesforceServer();
  const hs = new HubSpotServer();
  await Promise.all([sf.start(), hs.start()]);
  const app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_PUBLIC_URL: 'http://localhost:4000', ...crmEnv(sf, hs, opts.objects) }, label, undefined, { clock: opts.clock });
  await app.services.crmSync.client('hubspot')!.setup();
  return {
    sf,
    hs,
    app,
    async close() {
      await app.close();
      await Promise.all([sf.stop(), hs.stop()]);
    },
  };
}
