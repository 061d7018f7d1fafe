import { describe, expect, it } from 'vitest';
import type { CaseInput } from './crm.port';
import { hubspotTicket } from './hubspot/hubspot.mapper';
import { salesforceCase } from './salesforce/salesforce.mapper';

const input: CaseInput = {
  idempotencyKey: '0b7e3c2a-8a57-4a0e-9d0e-2f3c6f1f0a11',
  subject: 'Unanswered complaint on x (Finance)',
  description: 'Charged twice and nobody answers.',
  origin: 'x',
  priority: 'high',
  contactId: '0035g0000000001AAA',
  accountId: '0015g0000000001AAA',
  ownerId: '0055g0000000002AAA',
};

describe('escalation case mapping', () => {
  it('Salesforce: a Collections upsert record keyed by the item id, status left to the org', () => {
    expect(salesforceCase(input)).toEqual({
      attributes: { type: 'Case' },
      Earshot_Item_Id__c: input.idempotencyKey,
      Subject: input.subject,
      Description: input.description,
      Origin: 'x',
      Priority: 'High',
      ContactId: input.contactId,
      AccountId: input.accountId,
      OwnerId: input.ownerId,
    });
    const bare = salesforceCase({ ...input, contactId: null, accountId: null, ownerId: null, priority: 'medium' });
    expect(bare).not.toHaveProperty('ContactId');
    expect(bare).not.toHaveProperty('OwnerId');
    expect(bare).not.toHaveProperty('Status');
    expect(bare.Priority).toBe('Medium');
  });

  it('HubSpot: a batch-upsert input on the unique earshot_item_id property, all values strings', () => {
    const t = hubspotTicket({ ...input, origin: 'email', ownerId: '77' });
    expect(t).toEqual({
      idProperty: 'earshot_item_id',
      id: input.idempotencyKey,
      properties: {
        earshot_item_id: input.idempotencyKey,
        subject: input.subject,
        content: input.description,
        hs_pipeline: '0',
        hs_pipeline_stage: '1',
        hs_ticket_priority: 'HIGH',
        source_type: 'EMAIL',
        hubspot_owner_id: '77',
      },
    });
    expect(Object.values(t.properties).every((v) => typeof v === 'string')).toBe(true);
  });
});
