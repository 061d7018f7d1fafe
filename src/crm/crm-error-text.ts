import { looksLikePii, PHONE_LIKE_ALL } from '../auth/pii.policy';
import { CrmBudgetExhausted, CrmCallFailed } from './crm-budget';

/**
 * A CRM's error text as Earshot keeps it: in logs, `crmSyncStatus.lastError`, the write-back's
 * `crm_record.writeback_error` and queue, an escalation's or an erasure's error. CRMs quote the
 * record in their messages (Salesforce: "Email: invalid email address: jane@…", "data value too
 * large: …", an Apex trigger's addError with the contact's fields; HubSpot: "Property values were
 * not valid: [{…"message":"jane@… is not a valid email"…}]"), and that text went everywhere as
 * written: to analysts (who may not read addresses), into every log line, and into an erasure's
 * audit row after the person was erased.
 *
 * Every email address and every run that reads as a phone number (the PII policy's rules: 7+
 * digits with the separators people write) becomes `[email]` or `[phone]`; error codes, field
 * names and short numbers stay. What the policy would still read as an address (full-width or
 * other scripts' digits) takes the whole text with it. Long numbers go too (a Salesforce ErrorId
 * of 7+ digits, a HubSpot record id): the price of a rule that leaks nothing.
 */
export function crmErrorText(text: string): string {
  const out = bounded(text).replace(EMAIL, '[email]').replace(PHONE_LIKE_ALL, '[phone]');
  return looksLikePii(out) ? NOT_KEPT : out;
}

/**
 * At most MAX_CHARS of the text, cut at a space so no address is cut in half (a half address would
 * escape the patterns). The email pattern backtracks from every start in a run without "@": 100 KB
 * of such text (a proxy's HTML error page) took 16.5 s on the event loop; 2,000 characters take a
 * few milliseconds, and no log line or stored error needs more.
 */
const MAX_CHARS = 2_000;
function bounded(text: string): string {
  if (text.length <= MAX_CHARS) return text;
  const cut = Math.max(0, text.lastIndexOf(' ', MAX_CHARS));
  const note = `[…${text.length - cut} characters not kept]`;
  return cut > 0 ? `${text.slice(0, cut)} ${note}` : note;
}

/** The local part, "@", domain: as the PII policy reads an email, cut at what delimits it in JSON and prose. */
const EMAIL = /[^\s@"'`<>()[\]{},;:]+@[^\s@"'`<>()[\]{},;:]+\.[^\s@"'`<>()[\]{},;:]+/g;
const NOT_KEPT = '[CRM error text not kept: it quoted customer data]';

/**
 * An error thrown by a CRM client library, a parser or anything else whose message may quote what
 * the CRM sent (jsforce builds its message from the error body and keeps the body in `data`), made
 * fit to log and store: message and stack through `crmErrorText`, the raw body no longer enumerable
 * (a logger serializing the error would write it). Earshot's own CRM errors are built from text
 * that went through `crmErrorText` already and pass unchanged. Returns the same error.
 */
export function withoutCustomerData<E>(e: E): E {
  if (!(e instanceof Error) || e instanceof CrmCallFailed || e instanceof CrmBudgetExhausted) return e;
  const message = e.message;
  e.message = crmErrorText(message);
  if (typeof e.stack === 'string') e.stack = crmErrorText(e.stack.replace(message, e.message));
  for (const k of ['data', 'body', 'response', 'content']) {
    if (Object.prototype.propertyIsEnumerable.call(e, k)) Object.defineProperty(e, k, { enumerable: false });
  }
  return e;
}
