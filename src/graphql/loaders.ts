import DataLoader from 'dataloader';
import type { Principal } from '../auth/auth.service';
import type { CustomerService } from '../customers/customer.service';
import type { CrmRecordService } from '../crm/crm-record.service';
import type { CrmRecordRef } from '../crm/crm.type';
import type { Customer, Identity } from '../customers/customer.type';
import type { InteractionService } from '../interactions/interaction.service';
import type { Interaction, TopicRef } from '../interactions/interaction.type';
import type { Page } from './relay';

export interface Loaders {
  customer: DataLoader<string, Customer | null>;
  identities: DataLoader<string, Identity[]>;
  interaction: DataLoader<string, Interaction | null>;
  topics: DataLoader<string, TopicRef[]>;
  /** key: JSON [customerUuid, first, after] */
  customerInteractions: DataLoader<string, Page<Interaction>>;
  crmRecords: DataLoader<string, CrmRecordRef[]>;
}

/** Fresh per request: batching across one operation, no cache shared between users. */
export function createLoaders(services: { customers: CustomerService; interactions: InteractionService; crmRecords: CrmRecordService }, principal: Principal | null): Loaders {
  return {
    customer: new DataLoader((ids) => services.customers.byIds(ids)),
    identities: new DataLoader((ids) => services.customers.identitiesOf(ids, principal)),
    interaction: new DataLoader((ids) => services.interactions.byIds(ids)),
    crmRecords: new DataLoader((ids) => services.crmRecords.byCustomers(ids)),
    topics: new DataLoader((ids) => services.interactions.topicsOf(ids)),
    customerInteractions: new DataLoader(async (keys) => {
      // one batched query per distinct (first, after) pair; in practice one
      const groups = new Map<string, { idx: number; id: string }[]>();
      keys.forEach((k, idx) => {
        const [id, first, after] = JSON.parse(k) as [string, number, string | null];
        const g = JSON.stringify([first, after]);
        groups.set(g, [...(groups.get(g) ?? []), { idx, id }]);
      });
      const out: Page<Interaction>[] = new Array(keys.length);
      for (const [g, members] of groups) {
        const [first, after] = JSON.parse(g) as [number, string | null];
        const pages = await services.interactions.pagesByCustomer(members.map((m) => m.id), first, after);
        members.forEach((m, i) => (out[m.idx] = pages[i]!));
      }
      return out;
    }),
  };
}
