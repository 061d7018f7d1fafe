import { Arg, Authorized, Ctx, ID, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from './context';
import { Node, fromGlobalId } from './relay';

@Resolver()
export class NodeResolver {
  @Authorized()
  @Query(() => Node, { nullable: true, description: 'Any object by its opaque id (Relay)' })
  async node(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Node | null> {
    const { kind, id: uuid } = fromGlobalId(id);
    if (kind === 'Customer') return ctx.loaders.customer.load(uuid);
    if (kind === 'Interaction') return ctx.loaders.interaction.load(uuid);
    return null;
  }
}
