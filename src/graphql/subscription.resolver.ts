import { Arg, Authorized, Field, ID, InputType, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import { Customer } from '../customers/customer.type';
import { InteractionFilter } from '../interactions/interaction.resolver';
import { Interaction } from '../interactions/interaction.type';
import { ListeningItem } from '../listening-gap/listening-gap.type';
import { AppError } from '../shared/app-error';
import type { GraphQLContext } from './context';
import type { LiveEventKind } from './live-events';
import { fromGlobalId } from './relay';

function live<T>(data: SubscribeResolverData<unknown, unknown, GraphQLContext>, kind: LiveEventKind, accept: (row: T) => boolean): AsyncIterableIterator<T> {
  const l = data.context.live;
  if (!l) throw new AppError('BAD_USER_INPUT', 'subscriptions run over WebSocket (graphql-ws, subprotocol graphql-transport-ws) at /graphql');
  return l.hub.subscribe<T>(kind, accept, l.connection, l.limits, l.renewLoaders);
}

function matchesInteraction(f: InteractionFilter | null | undefined): (i: Interaction) => boolean {
  if (!f) return () => true;
  const customer = f.customerId ? fromGlobalId(f.customerId, 'Customer').id : null;
  return (i) =>
    (!f.source || i.source === f.source) &&
    (!f.direction || i.direction === f.direction) &&
    (!f.label || i.sentiment.label === f.label) &&
    (!f.intent || i.intent === f.intent) &&
    (!customer || i.customerUuid === customer) &&
    (!f.from || i.occurredAt.getTime() >= f.from.getTime()) &&
    (!f.to || i.occurredAt.getTime() < f.to.getTime());
}

/**
 * Live updates over graphql-ws. Each event is a committed change seen by any replica (PostgreSQL
 * LISTEN/NOTIFY, src/graphql/live-events.ts); fields resolve as in queries, with the subscriber's role.
 */
@Resolver()
export class SubscriptionResolver {
  @Authorized()
  @Subscription(() => Interaction, {
    description: 'Each interaction as it is stored (any channel, any replica), matching the filter',
    subscribe: (data: SubscribeResolverData<unknown, { filter?: InteractionFilter | null }, GraphQLContext>) => live(data, 'interaction', matchesInteraction(data.args.filter)),
  })
  interactionRecorded(
    @Root() interaction: Interaction,
    @Arg('filter', () => InteractionFilter, { nullable: true, description: 'only interactions matching all of these' }) _filter?: InteractionFilter,
  ): Interaction {
    return interaction;
  }

  @Authorized()
  @Subscription(() => ListeningItem, {
    description: 'A listening item opened, answered, reopened, assigned, escalated or closed',
    subscribe: (data: SubscribeResolverData<unknown, { department?: string | null }, GraphQLContext>) =>
      live<ListeningItem>(data, 'listening_item', (i) => !data.args.department || i.department === data.args.department),
  })
  listeningItemChanged(
    @Root() item: ListeningItem,
    @Arg('department', () => String, { nullable: true, description: 'only items routed to this department (assigned, else of the topic)' }) _department?: string,
  ): ListeningItem {
    return item;
  }

  @Authorized()
  @Subscription(() => Customer, {
    description: "A customer's sentiment summary changed (score, label, trend or interaction count)",
    subscribe: (data: SubscribeResolverData<unknown, { customerId?: string | null }, GraphQLContext>) => {
      const wanted = data.args.customerId ? fromGlobalId(data.args.customerId, 'Customer').id : null;
      return live<Customer>(data, 'customer_sentiment', (c) => !wanted || c.uuid === wanted);
    },
  })
  customerSentimentChanged(
    @Root() customer: Customer,
    @Arg('customerId', () => ID, { nullable: true, description: 'only this customer; all customers when omitted' }) _customerId?: string,
  ): Customer {
    return customer;
  }
}
