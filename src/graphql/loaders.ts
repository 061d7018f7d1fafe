import DataLoader from 'dataloader';
import type { Principal } from '../auth/auth.service';
import type { CustomerService } from '../customers/customer.service';
import type { CrmRecordService } from '../crm/crm-record.service';
import type { CrmRecordRef } from '../crm/crm.type';
import type { Customer, Identity } from '../customers/customer.type';
import type { InteractionService } from '../interactions/interaction.service';
import type { Interaction, TopicRef } from '../interactions/interaction.type';
import type { InteractionOrder } from '../interactions/interaction.service';
import type { Window } from './keyset';
import type { Page } from './relay';
import type { IdentityService } from '../identity/identity.service';
import { toMergeSuggestion, type MergeSuggestion } from '../identity/identity.type';
import type { ListeningGapService } from '../listening-gap/listening-gap.service';
import type { ListeningItem, ListeningItemEvent } from '../listening-gap/listening-gap.type';

export interface Loaders {
  customer: DataLoader<string, Customer | null>;
  identities: DataLoader<string, Identity[]>;
  interaction: DataLoader<string, Interaction | null>;
  topics: DataLoader<string, TopicRef[]>;
  /** key: JSON [customerUuid, window, order] */
  customerInteractions: DataLoader<string, Page<Interaction>>;
  /** totalCount of a customer's interactions, asked for only when a query selects it */
  customerInteractionCount: DataLoader<string, number>;
  crmRecords: DataLoader<string, CrmRecordRef[]>;
  listeningItem: DataLoader<string, ListeningItem | null>;
  listeningItemHistory: DataLoader<string, ListeningItemEvent[]>;
  mergeSuggestion: DataLoader<string, MergeSuggestion | null>;
}

/** Fresh per request: batching across one operation, no cache shared between users. */
export function createLoaders(
  services: { customers: CustomerService; interactions: InteractionService; crmRecords: CrmRecordService; listeningGap: ListeningGapService; identity: IdentityService },
  principal: Principal | null,
): Loaders {
  const customerInteractionCount = new DataLoader<string, number>((ids) => services.interactions.countsByCustomer(ids));
  return {
    customer: new DataLoader((ids) => services.customers.byIds(ids)),
    identities: new DataLoader((ids) => services.customers.identitiesOf(ids, principal)),
    interaction: new DataLoader((ids) => services.interactions.byIds(ids)),
    crmRecords: new DataLoader((ids) => services.crmRecords.byCustomers(ids)),
    topics: new DataLoader((ids) => services.interactions.topicsOf(ids)),
    customerInteractionCount,
    listeningItem: new DataLoader((ids) => services.listeningGap.byIds(ids)),
    listeningItemHistory: new DataLoader((ids) => services.listeningGap.historyOf(ids)),
    mergeSuggestion: new DataLoader((ids) => Promise.all(ids.map(async (id) => {
      const row = await services.identity.suggestion(id);
      return row ? toMergeSuggestion(row) : null;
    }))),
    customerInteractions: new DataLoader(async (keys) => {
      // one batched query per distinct (window, order); in practice one
      const groups = new Map<string, { idx: number; id: string }[]>();
      keys.forEach((k, idx) => {
        const [id, w, order] = JSON.parse(k) as [string, Window, InteractionOrder];
        const g = JSON.stringify([w, order]);
        groups.set(g, [...(groups.get(g) ?? []), { idx, id }]);
      });
      // an error in its place refuses that customer's key alone (a cursor of another customer's list)
      const out: (Page<Interaction> | Error)[] = new Array(keys.length);
      for (const [g, members] of groups) {
        const [w, order] = JSON.parse(g) as [Window, InteractionOrder];
        // a window refused whole (first over the cap, first with last, a cursor of two owners) is
        // its fields' error alone: thrown, it failed every key of the batch, other fields' too
        const pages = await services.interactions.pagesByCustomer(members.map((m) => m.id), w, order, (id) => customerInteractionCount.load(id)).catch((e: Error) => members.map(() => e));
        members.forEach((m, i) => (out[m.idx] = pages[i]!));
      }
      return out;
    }),
  };
}
