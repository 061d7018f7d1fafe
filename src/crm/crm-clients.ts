import type { Logger } from '../shared/logger';
import type { CrmConfig } from './crm.config';
import type { CrmClient } from './crm.port';
import { HubSpotCrmClient } from './hubspot/hubspot.client';
import { SalesforceCrmClient } from './salesforce/salesforce.client';

/**
 * The adapters of the CRMs configured; none when neither has credentials. Nothing connects yet.
 * `now` is the clock of their API budgets (rolling windows, Retry-After waits): the injected one.
 */
export function createCrmClients(crm: CrmConfig, log: Logger, opts: { bulkPollMs?: number; now?: () => number } = {}): CrmClient[] {
  const out: CrmClient[] = [];
  if (crm.salesforce) out.push(new SalesforceCrmClient(crm.salesforce, crm, log.child({ crm: 'salesforce' }), { bulkPollMs: opts.bulkPollMs, now: opts.now }));
  if (crm.hubspot) out.push(new HubSpotCrmClient(crm.hubspot, crm, log.child({ crm: 'hubspot' }), { searchLagMs: crm.hubspot.searchLagMs, now: opts.now }));
  return out;
}
