/** What a deep link needs to know about the org or portal. */
export interface CrmOrgInfo {
  instanceUrl?: string | null;
  portalId?: string | null;
  appUrl?: string | null;
}

const HUBSPOT_OBJECT_IDS: Record<string, string> = { contacts: '0-1', companies: '0-2' };

/**
 * A deep link into the CRM's UI: Salesforce Lightning record pages
 * (`<instance>/lightning/r/<Object>/<Id>/view`), HubSpot record pages
 * (`https://app.hubspot.com/contacts/<portalId>/record/0-1/<id>`, 0-2 for companies).
 * Null when the org's instance URL or the portal id is not known yet.
 */
export function crmRecordUrl(system: string, objectType: string, externalId: string, org: CrmOrgInfo): string | null {
  if (system === 'salesforce') {
    if (!org.instanceUrl) return null;
    return `${org.instanceUrl.replace(/\/$/, '')}/lightning/r/${encodeURIComponent(objectType)}/${encodeURIComponent(externalId)}/view`;
  }
  if (system === 'hubspot') {
    const typeId = HUBSPOT_OBJECT_IDS[objectType];
    if (!org.portalId || !typeId) return null;
    return `${(org.appUrl ?? 'https://app.hubspot.com').replace(/\/$/, '')}/contacts/${org.portalId}/record/${typeId}/${encodeURIComponent(externalId)}`;
  }
  return null;
}
