import path from 'node:path';
import { loadConfig, type Config } from '../config/config';
import { createCrmClients } from '../crm/crm-clients';
import type { Logger } from '../shared/logger';
import { generateDemoInteractions } from './demo-data';

type CrmServersModule = {
  startCrmServers(opts: { contacts?: number }): Promise<{
    salesforce: { store: { insert(type: string, fields: Record<string, unknown>): unknown }; stop(): Promise<void> };
    hubspot: { store: { create(type: 'contacts', props: Record<string, string | null>): unknown; portalId: number | string }; stop(): Promise<void> };
    info: {
      salesforce: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string };
      hubspot: { basePath: string; accessToken: string };
    };
  }>;
};

/**
 * The demo's CRMs (`earshot demo --crm`): the local Salesforce and HubSpot servers of
 * test/crm-servers, compiled to dist/test by `npm run build` in a checkout, with contacts for
 * some of the demo people, and a config that syncs from them. Loaded only for --crm, by path at
 * run time: the production image ships neither this nor dist/test, and needs neither.
 */
export async function startDemoCrm(config: Config, log: Logger): Promise<{ config: Config; stop: () => Promise<void> }> {
  const file = path.resolve(__dirname, '../../test/crm-servers/main.js');
  let mod: CrmServersModule;
  try {
    mod = (await import(file)) as CrmServersModule;
  } catch {
    throw new Error(`--crm needs the local CRM servers of a checkout: run npm run build (missing ${file})`);
  }
  const { salesforce, hubspot, info } = await mod.startCrmServers({ contacts: 50 });
  // Half of the demo people are in Salesforce, a third in HubSpot (some in both), by email.
  const people = new Map<string, string>();
  for (const m of generateDemoInteractions()) if (m.author.email && m.author.displayName) people.set(m.author.email, m.author.displayName);
  [...people].forEach(([email, name], i) => {
    const [first, ...rest] = name.split(' ');
    if (i % 2 === 0) salesforce.store.insert('Contact', { FirstName: first, LastName: rest.join(' ') || first, Email: email });
    if (i % 3 === 0) hubspot.store.create('contacts', { email, firstname: first ?? null, lastname: rest.join(' ') || null });
  });
  const next = loadConfig({
    ...process.env,
    EARSHOT_SF_LOGIN_URL: info.salesforce.loginUrl,
    EARSHOT_SF_CLIENT_ID: info.salesforce.clientId,
    EARSHOT_SF_CLIENT_SECRET: info.salesforce.clientSecret,
    EARSHOT_SF_USERNAME: info.salesforce.username,
    EARSHOT_SF_PASSWORD: info.salesforce.password,
    EARSHOT_HUBSPOT_TOKEN: info.hubspot.accessToken,
    EARSHOT_HUBSPOT_BASE_PATH: info.hubspot.basePath,
    EARSHOT_HUBSPOT_PORTAL_ID: String(hubspot.store.portalId),
    EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0',
    EARSHOT_CRM_SYNC_INTERVAL_MS: process.env.EARSHOT_CRM_SYNC_INTERVAL_MS ?? '60000',
  });
  for (const client of createCrmClients(next.crm, log)) await client.setup();
  log.info({ salesforce: info.salesforce.loginUrl, hubspot: info.hubspot.basePath }, 'local CRM servers started for the demo');
  return { config: next, stop: () => Promise.all([salesforce.stop(), hubspot.stop()]).then(() => undefined) };
}
