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
 * Null when the org's instance URL or the portal id is not known yet, or when the base is not
 * an http(s) URL: the instance URL comes from the OAuth token answer, and a `javascript:` one
 * became a link in the console and on Kafka (the console now also refuses such links itself).
 */
export function crmRecordUrl(system: string, objectType: string, externalId: string, org: CrmOrgInfo): string | null {
  if (system === 'salesforce') {
    const base = webBase(org.instanceUrl);
    if (!base) return null;
    return `${base}/lightning/r/${encodeURIComponent(objectType)}/${encodeURIComponent(externalId)}/view`;
  }
  if (system === 'hubspot') {
    const typeId = HUBSPOT_OBJECT_IDS[objectType];
    const base = webBase(org.appUrl ?? 'https://app.hubspot.com');
    if (!org.portalId || !typeId || !base) return null;
    return `${base}/contacts/${encodeURIComponent(org.portalId)}/record/${typeId}/${encodeURIComponent(externalId)}`;
  }
  return null;
}

/** `url` without a trailing slash when it is an http(s) URL, else null. */
function webBase(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  } catch {
    return null;
  }
  return url.replace(/\/$/, '');
}
