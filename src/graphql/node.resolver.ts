import { Arg, Authorized, Ctx, ID, Query, Resolver } from 'type-graphql';
import { AppError } from '../shared/app-error';
import type { GraphQLContext } from './context';
import { Node, fromGlobalId } from './relay';

// mergeSuggestions is for these roles only; node() must not be a way around that
const SUGGESTION_READERS = new Set(['admin', 'agent', 'analyst']);

@Resolver()
export class NodeResolver {
  @Authorized()
  @Query(() => Node, { nullable: true, description: 'Any object by its opaque id (Relay); null when it does not exist' })
  async node(@Arg('id', () => ID, { description: 'a global id from any id field' }) id: string, @Ctx() ctx: GraphQLContext): Promise<Node | null> {
    const { kind, id: uuid } = fromGlobalId(id);
    switch (kind) {
      case 'Customer':
        return ctx.loaders.customer.load(uuid);
      case 'Interaction':
        return ctx.loaders.interaction.load(uuid);
      case 'ListeningItem':
        return ctx.loaders.listeningItem.load(uuid);
      case 'MergeSuggestion':
        // any of the token's roles, as @Authorized checks mergeSuggestions (its top role alone refused a sales+analyst token)
        if (!ctx.principal!.roles.some((r) => SUGGESTION_READERS.has(r))) throw new AppError('FORBIDDEN', `merge suggestions need one of the roles ${[...SUGGESTION_READERS].join(', ')}`);
        return ctx.loaders.mergeSuggestion.load(uuid);
      default:
        throw AppError.badInput(`${kind} objects cannot be fetched by node(id:)`, { argument: 'id', rule: 'the id of a Node type' });
    }
  }
}
