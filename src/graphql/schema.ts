import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type ContainerType } from 'type-graphql';
import { Customer } from '../customers/customer.type';
import { CustomerResolver } from '../customers/customer.resolver';
import { Interaction } from '../interactions/interaction.type';
import { InteractionResolver } from '../interactions/interaction.resolver';
import { CustomerMergeHistoryResolver, IdentityChangeResolver, IdentityResolver } from '../identity/identity.resolver';
import { authChecker } from './auth-checker';
import { SentimentResolver } from '../sentiment/sentiment.resolver';
import { NodeResolver } from './node.resolver';
import { CrmResolver } from '../crm/crm.resolver';
import { ListeningGapResolver, TopicInsightResolver } from '../listening-gap/listening-gap.resolver';
import { ViewerResolver } from '../auth/viewer.resolver';

export const RESOLVERS = [
  CustomerResolver,
  InteractionResolver,
  NodeResolver,
  SentimentResolver,
  IdentityResolver,
  IdentityChangeResolver,
  CustomerMergeHistoryResolver,
  CrmResolver,
  ListeningGapResolver,
  TopicInsightResolver,
  ViewerResolver,
] as const;

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
  return buildSchema({
    resolvers: [...RESOLVERS],
    orphanedTypes: [Customer, Interaction],
    authChecker,
    validate: true,
    container,
  });
}

/** The SDL committed as schema/schema.graphql: sorted, so diffs show real changes only. */
export async function printSdl(): Promise<string> {
  const schema = await createSchema();
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
