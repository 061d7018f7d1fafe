import type { DataSource } from 'typeorm';
import type { CrmConfig } from './crm.config';
import { crmRecordUrl } from './crm-links';
import { liveRecordsOfCustomers, orgLinks } from './crm.repository';
import type { CrmRecordRef, CrmSystemEnum } from './crm.type';

/** CRM records of customers as the API shows them: ids, owner, last change and a deep link; never the raw payload. */
export class CrmRecordService {
  constructor(
    private readonly ds: DataSource,
    private readonly crm: Pick<CrmConfig, 'salesforce' | 'hubspot'>,
  ) {}

  /** Live (not deleted) records per customer id, in input order; Salesforce first, then by object and id. */
  async byCustomers(customerIds: readonly string[]): Promise<CrmRecordRef[][]> {
    const rows = await liveRecordsOfCustomers(this.ds, customerIds);
    const orgs = rows.length ? await orgLinks(this.ds) : [];
    const org = new Map(orgs.map((o) => [o.system, o]));
    const out = new Map<string, CrmRecordRef[]>();
    for (const r of rows) {
      const o = org.get(r.system);
      const url = crmRecordUrl(r.system, r.object_type, r.external_id, {
        instanceUrl: o?.instance_url ?? this.crm.salesforce?.instanceUrl ?? null,
        portalId: this.crm.hubspot?.portalId ?? o?.portal_id ?? null,
        appUrl: this.crm.hubspot?.appUrl ?? null,
      });
      const list = out.get(r.customer_id) ?? [];
      list.push({ system: r.system as CrmSystemEnum, objectType: r.object_type, externalId: r.external_id, url, owner: r.owner_id, lastModified: r.modstamp });
      out.set(r.customer_id, list);
    }
    return customerIds.map((id) => out.get(id) ?? []);
  }
}
