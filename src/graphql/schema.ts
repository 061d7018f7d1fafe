import 'reflect-metadata';
import { isObjectType, lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type ContainerType } from 'type-graphql';
import { Customer } from '../customers/customer.type';
import { CustomerResolver } from '../customers/customer.resolver';
import { Interaction } from '../interactions/interaction.type';
import { AuthorResolver, InteractionResolver } from '../interactions/interaction.resolver';
import { CustomerMergeHistoryResolver, IdentityChangeResolver, IdentityResolver } from '../identity/identity.resolver';
import { authChecker } from './auth-checker';
import { describeSchema } from './descriptions';
import { callFieldResolversDirectly } from './direct-resolvers';
import { SentimentResolver } from '../sentiment/sentiment.resolver';
import { NodeResolver } from './node.resolver';
import { SubscriptionResolver } from './subscription.resolver';
import { CrmResolver } from '../crm/crm.resolver';
import { ListeningGapResolver, TopicInsightResolver } from '../listening-gap/listening-gap.resolver';
import { PrivacyResolver } from '../privacy/privacy.resolver';
import { ViewerResolver } from '../auth/viewer.resolver';

export const RESOLVERS = [
  CustomerResolver,
  InteractionResolver,
  AuthorResolver,
  NodeResolver,
  SentimentResolver,
  IdentityResolver,
  IdentityChangeResolver,
  CustomerMergeHistoryResolver,
  CrmResolver,
  ListeningGapResolver,
  TopicInsightResolver,
  SubscriptionResolver,
  PrivacyResolver,
  ViewerResolver,
] as const;

// Subscriptions bring their own event source (src/graphql/live-hub.ts) through `subscribe`;
// type-graphql still asks for a PubSub, which nothing uses.
const NO_PUBSUB = {
  publish(): void {
    throw new Error('publish through PostgreSQL NOTIFY (src/graphql/live-events.ts)');
  },
  subscribe(): never {
    throw new Error('subscriptions use their own subscribe function');
  },
};

/**
 * Builds the executable schema. `instances` holds the resolver objects wired by hand in
 * app.ts; emitting the SDL needs none, so it passes an empty container.
 */
export async function createSchema(instances: Map<Function, unknown> = new Map()): Promise<GraphQLSchema> {
  const container: ContainerType = {
    get: (cls: Function) => {
      const found = instances.get(cls);
      if (!found) throw new Error(`resolver ${cls.name} is not wired in app.ts`);
      return found;
    },
  };
  const schema = await buildSchema({
    resolvers: [...RESOLVERS],
    orphanedTypes: [Customer, Interaction],
    authChecker,
    validate: true,
    container,
    pubSub: NO_PUBSUB,
  });
  return resolveLazyTotals(describeSchema(callFieldResolversDirectly(schema, instances)));
}

/**
 * A page's `totalCount` is a getter that starts its count query when read (src/graphql/keyset.ts)
 * and returns a promise. graphql-jit (src/graphql/jit.ts) reads a field without a resolver as a
 * plain, settled value, so connections resolve it explicitly, which both engines await.
 */
function resolveLazyTotals(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || !type.name.endsWith('Connection')) continue;
    const field = type.getFields().totalCount;
    if (field && !field.resolve) field.resolve = (page: { totalCount: number | Promise<number> }) => page.totalCount;
  }
  return schema;
}

/** The SDL committed as schema/schema.graphql: sorted, so diffs show real changes only. */
export async function printSdl(): Promise<string> {
  const schema = await createSchema();
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
