import { buildSubgraphSchema } from '@apollo/subgraph';
import { printSchemaWithDirectives } from '@graphql-tools/utils';
import { defaultFieldResolver, getNamedType, GraphQLSchema, isEnumType, isObjectType, parse } from 'graphql';
import { createResolversMap } from 'type-graphql';
import type { Customer } from '../customers/customer.type';
import { requirePrincipal } from './auth-checker';
import type { GraphQLContext } from './context';
import { fromGlobalId } from './relay';

/** Federation 2 directives the SDL uses; everything else stays Earshot's own. */
const LINK = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])';

/**
 * Earshot as an Apollo Federation 2 subgraph: the schema built by type-graphql, printed with its
 * directives (`Customer @key(fields: "id")`), rebuilt by @apollo/subgraph with the same resolvers
 * (type-graphql's `examples/apollo-federation-2` approach), plus the entity resolver. Subscriptions
 * are left out: a gateway does not route them; clients subscribe to Earshot directly.
 *
 * What must stay true: an entity reference resolves through the same DataLoader as `customer(id:)`,
 * so roles and PII rules are those of queries, and it needs a credential as `customer(id:)` does:
 * `_entities` is @apollo/subgraph's root field, not ours, so no `@Authorized()` guards it, and
 * without this check anyone who knew a customer id read its name, sentiment and interactions.
 * `_service { sdl }` (the schema, for a gateway to compose) needs one too when introspection is
 * off (`sdlNeedsCredential`): it answered anyone, so turning introspection off hid nothing.
 */
export function toSubgraphSchema(schema: GraphQLSchema, opts: { sdlNeedsCredential: boolean } = { sdlNeedsCredential: true }): GraphQLSchema {
  const config = schema.toConfig();
  const withoutSubscriptions = new GraphQLSchema({ ...config, subscription: undefined, types: config.types.filter((t) => t !== config.subscription) });
  const sdl = printSchemaWithDirectives(withoutSubscriptions);
  const resolvers = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  delete resolvers.Subscription;
  resolvers.Customer = {
    ...resolvers.Customer,
    __resolveReference(ref: { id: string }, ctx: GraphQLContext): Promise<Customer | null> {
      requirePrincipal(ctx);
      return ctx.loaders.customer.load(fromGlobalId(ref.id, 'Customer').id);
    },
  };
  const subgraph = buildSubgraphSchema([{ typeDefs: parse(`${LINK}\n${sdl}`), resolvers: resolvers as never }]);
  // Enum defaults were read from SDL before the enums got their internal values: map them too
  for (const type of Object.values(subgraph.getTypeMap())) {
    if (!isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      for (const arg of field.args) {
        const named = getNamedType(arg.type);
        if (isEnumType(named) && typeof arg.defaultValue === 'string') arg.defaultValue = named.getValue(arg.defaultValue)?.value ?? arg.defaultValue;
      }
    }
  }
  if (opts.sdlNeedsCredential) {
    const service = subgraph.getQueryType()?.getFields()._service;
    if (service) {
      const resolve = service.resolve ?? defaultFieldResolver;
      service.resolve = (source, args, ctx: GraphQLContext, info) => {
        requirePrincipal(ctx);
        return resolve(source, args, ctx, info);
      };
    }
  }
  return subgraph;
}
