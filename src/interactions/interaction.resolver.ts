import { IsOptional, ValidateNested } from 'class-validator';
import { Arg, Args, ArgsType, Authorized, Ctx, Field, FieldResolver, GraphQLISODateTime, ID, InputType, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Customer } from '../customers/customer.type';
import { AppError } from '../shared/app-error';
import { PageArgs } from '../graphql/args';
import type { GraphQLContext } from '../graphql/context';
import { Direction, Intent, SentimentLabel } from '../graphql/enums';
import type { IngestService } from './ingest.service';
import { InteractionOrder, type InteractionService } from './interaction.service';
import { authorHandleFor, displayNameFor } from '../auth/pii.policy';
import { Author, IngestResult, Interaction, InteractionConnection, InteractionInput, TopicRef } from './interaction.type';

@InputType()
export class InteractionFilter {
  @Field(() => String, { nullable: true })
  source?: string;

  @Field(() => Direction, { nullable: true })
  direction?: Direction;

  @Field(() => SentimentLabel, { nullable: true })
  label?: SentimentLabel;

  @Field(() => Intent, { nullable: true })
  intent?: Intent;

  @Field(() => ID, { nullable: true })
  customerId?: string;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'occurredAt ≥ from' })
  @IsOptional()
  from?: Date;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'occurredAt < to' })
  @IsOptional()
  to?: Date;
}

@ArgsType()
export class InteractionsArgs extends PageArgs {
  @Field(() => InteractionFilter, { nullable: true, description: 'all interactions when omitted' })
  @IsOptional()
  @ValidateNested()
  filter?: InteractionFilter;

  @Field(() => InteractionOrder, { nullable: true, defaultValue: InteractionOrder.NEWEST, description: 'list order (default NEWEST)' })
  order?: InteractionOrder;
}

@Resolver(() => Interaction)
export class InteractionResolver {
  constructor(
    private readonly interactions: InteractionService,
    private readonly ingest: IngestService,
  ) {}

  @Authorized()
  @Query(() => InteractionConnection, { name: 'interactions', description: 'Interactions, newest first' })
  interactionsPage(@Args(() => InteractionsArgs) args: InteractionsArgs): Promise<InteractionConnection> {
    return this.interactions.page(args, args.filter ?? {}, args.order ?? InteractionOrder.NEWEST);
  }

  @Authorized('admin', 'service', 'agent')
  @Mutation(() => IngestResult, { description: 'Same pipeline and result as POST /ingest; at most 1,000 per call' })
  ingestInteractions(@Arg('input', () => [InteractionInput]) input: InteractionInput[]): Promise<IngestResult> {
    if (input.length > 1000) throw AppError.badInput('at most 1000 interactions per call');
    return this.ingest.ingestObjects(input.map(asMessage), 'graphql');
  }

  @FieldResolver(() => Customer, { nullable: true })
  customer(@Root() i: Interaction, @Ctx() ctx: GraphQLContext): Promise<Customer | null> | null {
    return i.customerUuid ? ctx.loaders.customer.load(i.customerUuid) : null;
  }

  @FieldResolver(() => [TopicRef])
  topics(@Root() i: Interaction, @Ctx() ctx: GraphQLContext): Promise<TopicRef[]> {
    return ctx.loaders.topics.load(i.uuid);
  }
}

/**
 * GraphQL input objects carry nulls for absent fields; the JSON Schema wants them absent.
 * Only the input types' own fields are copied: `metadata` is the caller's JSON, kept as it is
 * (its nulls are data) and never walked recursively here, however deep it nests.
 */
function asMessage(i: InteractionInput): unknown {
  // GraphQL input objects carry nulls for absent fields (the JSON Schema wants them absent) and
  // DateTimeISO arguments arrive as Dates (the schema wants the string)
  const strip = (o: object): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));
  const m = strip(i);
  if (i.author) {
    const author = strip(i.author);
    if (i.author.crmIds) author.crmIds = i.author.crmIds.map(strip);
    m.author = author;
  }
  return m;
}

/** What an author's fields show depends on who asks (src/auth/pii.policy.ts). */
@Resolver(() => Author)
export class AuthorResolver {
  @FieldResolver(() => String, { nullable: true, description: 'null for roles without PII on address channels (sms, email, call, whatsapp, chat, ticket, survey) or when it reads as an email or phone' })
  handle(@Root() a: Author, @Ctx() ctx: GraphQLContext): string | null {
    return authorHandleFor(ctx.principal, a.source, a.handle);
  }

  @FieldResolver(() => String, { nullable: true, description: 'null for roles without PII when it reads as an email or phone' })
  displayName(@Root() a: Author, @Ctx() ctx: GraphQLContext): string | null {
    return displayNameFor(ctx.principal, a.displayName);
  }
}
