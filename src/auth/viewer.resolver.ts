import { Authorized, Ctx, Field, ObjectType, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context';
import { PII_ROLES } from './auth.service';

@ObjectType({ description: 'Who is calling: what a frontend needs to decide which views and actions to offer' })
export class Viewer {
  @Field({ description: "the API key's name or the token's subject" })
  id!: string;

  @Field({ description: 'the role the request acts as (admin, agent, analyst, sales or service)' })
  role!: string;

  @Field({ description: 'whether emails and phone numbers are shown to this role (and may be searched for)' })
  canSeePii!: boolean;
}

@Resolver()
export class ViewerResolver {
  @Authorized()
  @Query(() => Viewer, { description: 'The authenticated caller and its role' })
  viewer(@Ctx() ctx: GraphQLContext): Viewer {
    const p = ctx.principal!;
    return { id: p.id, role: p.role, canSeePii: PII_ROLES.has(p.role) };
  }
}
