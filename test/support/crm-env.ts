import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { TestApp } from './app';
import { waitFor } from './kafka-fixtures';

/**
 * The EARSHOT_* settings that point a test's Earshot at its own local Salesforce and HubSpot
 * servers (fast retries, no HubSpot search lag); `objects` chooses what each one syncs.
 */
export function crmEnv(
  sf: SalesforceServer,
  hs: HubSpotServer,
  objects: { salesforce?: string; hubspot?: string } = {},
): Record<string, string> {
  return {
    ...salesforceEnv(sf, objects.salesforce),
    EARSHOT_HUBSPOT_TOKEN: hs.options.privateAppTokens[0]!,
    EARSHOT_HUBSPOT_BASE_PATH: hs.url,
    EARSHOT_HUBSPOT_OBJECTS: objects.hubspot ?? 'contacts',
    EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0',
  };
}

/** The EARSHOT_* settings for a test's Earshot with only its local Salesforce server (fast retries). */
export function salesforceEnv(sf: SalesforceServer, objects = 'Contact'): Record<string, string> {
  return {
    EARSHOT_SF_LOGIN_URL: sf.url,
    EARSHOT_SF_CLIENT_ID: sf.options.clientId,
    EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
    EARSHOT_SF_USERNAME: 'earshot@example.com',
    EARSHOT_SF_PASSWORD: 'password',
    EARSHOT_SF_OBJECTS: objects,
    EARSHOT_CRM_RETRY_BASE_MS: '10',
  };
}

/**
 * Runs the app's CRM sync for `system` until the record `externalId` is taken in (a row in
 * crm_record). `crmSync.run()` joins a run already going, such as the sync role's first run at
 * start, which may have read the CRM before the test created the record: one call is not enough.
 */
export async function syncUntilTaken(app: TestApp, system: 'salesforce' | 'hubspot', externalId: string): Promise<void> {
  await waitFor(
    `the ${system} record ${externalId} is taken in`,
    async () => {
      await app.services.crmSync.run(system);
      const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE system = $1 AND external_id = $2`, [system, externalId])) as { n: number }[];
      return n === 1;
    },
    30_000,
  );
}
