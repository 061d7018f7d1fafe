import { describe, expect, it } from 'vitest';
import { knownVariableNames, loadConfig } from '../config/config';
import { responseTooLarge } from './crm-response-cap';

describe('EARSHOT_CRM_MAX_RESPONSE_BYTES', () => {
  it('is 64 MiB unless set, and a known variable', () => {
    expect(loadConfig({}).crm.maxResponseBytes).toBe(64 * 1024 * 1024);
    expect(loadConfig({ EARSHOT_CRM_MAX_RESPONSE_BYTES: '1048576' }).crm.maxResponseBytes).toBe(1_048_576);
    expect(knownVariableNames().has('EARSHOT_CRM_MAX_RESPONSE_BYTES')).toBe(true);
  });

  it('is refused at start below 64 KiB or above 512 MiB (V8 makes no longer string), naming the variable', () => {
    expect(() => loadConfig({ EARSHOT_CRM_MAX_RESPONSE_BYTES: '1000' })).toThrow(/EARSHOT_CRM_MAX_RESPONSE_BYTES/);
    expect(() => loadConfig({ EARSHOT_CRM_MAX_RESPONSE_BYTES: String(1024 ** 3) })).toThrow(/EARSHOT_CRM_MAX_RESPONSE_BYTES/);
  });
});

describe('responseTooLarge', () => {
  it('names the vendor, call, cap and declared size, and nothing of the query string', () => {
    expect(responseTooLarge('HubSpot', 'POST', '/crm/v3/objects/contacts/search', 64 * 1024 * 1024, 1_073_741_824).message).toBe(
      'HubSpot POST /crm/v3/objects/contacts/search answered with a body larger than 64 MiB (Content-Length 1073741824); cut off there and the call failed (EARSHOT_CRM_MAX_RESPONSE_BYTES)',
    );
    expect(responseTooLarge('Salesforce', 'GET', '/services/data/v62.0/query', 100_000, null).message).toMatch(/larger than 100000 bytes; cut off/);
  });
});
