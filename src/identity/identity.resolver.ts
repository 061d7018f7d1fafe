import DataLoader from 'dataloader';
import { IsOptional, IsUUID, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import { Arg, Args, ArgsType, Authorized, Ctx, Field, FieldResolver, Float, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { Principal } from '../auth/auth.service';
import { Customer } from '../customers/customer.type';
import { PageArgs } from '../graphql/args';
import type { GraphQLContext } from '../graphql/context';
import { IdentityKind } from '../graphql/enums';
import { fromGlobalId, mapPage } from '../graphql/relay';
import { AppError } from '../shared/app-error';
import type { IdentityOutcome, IdentityService } from './identity.service';
import {
  IdentityChange,
  MergeRecord,
  MergeSuggestion,
  MergeSuggestionConnection,
  ReresolutionJob,
  toMergeRecord,
  toMergeSuggestion,
  toReresolutionJob,
} from './identity.type';
import type { ReresolutionJobService } from './reresolve.job';

const READERS = ['admin', 'agent', 'analyst'];
const WRITERS = ['admin', 'agent'];

@ArgsType()
export class MergeCustomersArgs {
  @Field(() => ID, { description: 'the customer that stays' })
  survivorId!: string;

  @Field(() => ID, { description: 'the customer merged into it' })
  mergedId!: string;

  @Field(() => String, { description: 'why, for the audit log' })
  @MinLength(3)
  @MaxLength(500)
  reason!: string;
}

@ArgsType()
export class UnmergeCustomerArgs {
  @Field(() => ID, { nullable: true, description: 'the MergeRecord id of the merge to undo' })
  @IsOptional()
  @IsUUID()
  mergeId?: string;

  @Field(() => ID, { nullable: true, description: 'or a merged-away customer: its latest merge is undone' })
  @IsOptional()
  customerId?: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(500)
  reason?: string;
}

@ArgsType()
export class LinkIdentityArgs {
  @Field(() => ID)
  customerId!: string;

  @Field(() => IdentityKind)
  kind!: IdentityKind;

  @Field(() => String, { nullable: true, description: 'social network of a handle (x, instagram, …); CRM system of a CRM id (salesforce, hubspot)' })
  @IsOptional()
  @Matches(/^[a-z0-9_.-]{1,40}$/i)
  network?: string;

  @Field(() => String, { description: 'as written: an address, a number, a handle, a profile URL, or Object:id for CRM ids' })
  @MinLength(1)
  @MaxLength(500)
  value!: string;
}

@ArgsType()
export class ReresolutionArgs {
  @Field(() => Float, { nullable: true, description: 'auto-link threshold in bits for this run (default: EARSHOT_IDENTITY_AUTO_LINK_BITS)' })
  @IsOptional()
  @Min(0)
  @Max(100)
  autoLinkBits?: number;

  @Field(() => Float, { nullable: true, description: 'review threshold in bits for this run (default: EARSHOT_IDENTITY_REVIEW_BITS)' })
  @IsOptional()
  @Min(0)
  @Max(100)
  reviewBits?: number;
}

function actorOf(ctx: GraphQLContext): string {
  const p: Principal = ctx.principal!;
  return `${p.role}:${p.id}`;
}

function change(o: IdentityOutcome): IdentityChange {
  const c = new IdentityChange();
  c.audit = o.audit ? toMergeRecord(o.audit) : null;
  c.customerUuids = o.customerIds;
  return c;
}

/** Merges, unmerges, manual links and the review queue of merge suggestions. */
@Resolver(() => MergeSuggestion)
export class IdentityResolver {
  constructor(
    private readonly identity: IdentityService,
    private readonly jobs: ReresolutionJobService,
  ) {}

  @Authorized(...READERS)
  @Query(() => MergeSuggestionConnection, { description: 'Pending merge suggestions, oldest first' })
  async mergeSuggestions(@Args(() => PageArgs) args: PageArgs): Promise<MergeSuggestionConnection> {
    return mapPage(await this.identity.suggestions(args), toMergeSuggestion);
  }

  @Authorized(...WRITERS)
  @Mutation(() => IdentityChange, { description: 'Merge the two customers of a suggestion (the older one survives)' })
  async acceptMergeSuggestion(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<IdentityChange> {
    return change(await this.identity.acceptSuggestion(fromGlobalId(id, 'MergeSuggestion').id, actorOf(ctx)));
  }

  @Authorized(...WRITERS)
  @Mutation(() => MergeSuggestion, { description: 'Reject a suggestion: the pair is never suggested or merged by a rule again' })
  async rejectMergeSuggestion(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<MergeSuggestion> {
    return toMergeSuggestion(await this.identity.rejectSuggestion(fromGlobalId(id, 'MergeSuggestion').id, actorOf(ctx)));
  }

  @Authorized(...WRITERS)
  @Mutation(() => IdentityChange, { description: 'Merge one customer into another by hand (audited)' })
  async mergeCustomers(@Args(() => MergeCustomersArgs) args: MergeCustomersArgs, @Ctx() ctx: GraphQLContext): Promise<IdentityChange> {
    const survivor = fromGlobalId(args.survivorId, 'Customer').id;
    const merged = fromGlobalId(args.mergedId, 'Customer').id;
    return change(await this.identity.merge(survivor, merged, { reason: args.reason, actor: actorOf(ctx) }));
  }

  @Authorized(...WRITERS)
  @Mutation(() => IdentityChange, { description: 'Undo a merge: identities, interactions, CRM records and rollups go back' })
  async unmergeCustomer(@Args(() => UnmergeCustomerArgs) args: UnmergeCustomerArgs, @Ctx() ctx: GraphQLContext): Promise<IdentityChange> {
    if (!args.mergeId === !args.customerId) throw AppError.badInput('give exactly one of mergeId and customerId');
    const ref = args.mergeId ? { auditId: args.mergeId } : { customerId: fromGlobalId(args.customerId!, 'Customer').id };
    return change(await this.identity.unmerge(ref, actorOf(ctx), args.reason ?? 'unmerged by hand'));
  }

  @Authorized(...WRITERS)
  @Mutation(() => IdentityChange, { description: 'Add an identity to a customer; when another customer holds it, the two are merged' })
  async linkIdentity(@Args(() => LinkIdentityArgs) args: LinkIdentityArgs, @Ctx() ctx: GraphQLContext): Promise<IdentityChange> {
    const customer = fromGlobalId(args.customerId, 'Customer').id;
    return change(await this.identity.linkIdentity(customer, args.kind, args.network ?? null, args.value, actorOf(ctx)));
  }

  @Authorized(...WRITERS)
  @Mutation(() => IdentityChange, { description: 'Move an identity, with the interactions it brought, to a new customer of its own' })
  async unlinkIdentity(@Args(() => LinkIdentityArgs) args: LinkIdentityArgs, @Ctx() ctx: GraphQLContext): Promise<IdentityChange> {
    const customer = fromGlobalId(args.customerId, 'Customer').id;
    return change(await this.identity.unlinkIdentity(customer, args.kind, args.network ?? null, args.value, actorOf(ctx)));
  }

  @Authorized('admin')
  @Mutation(() => ReresolutionJob, { description: 'Re-resolve every CRM person profile in the background (after a threshold change)' })
  async startReresolution(@Args(() => ReresolutionArgs) args: ReresolutionArgs, @Ctx() ctx: GraphQLContext): Promise<ReresolutionJob> {
    return toReresolutionJob(await this.jobs.start(actorOf(ctx), args));
  }

  @Authorized(...READERS)
  @Query(() => ReresolutionJob, { nullable: true, description: 'Status and progress of a re-resolution job' })
  async reresolutionJob(@Arg('id', () => ID, { description: 'the job id from startReresolution' }) id: string): Promise<ReresolutionJob | null> {
    const job = await this.jobs.get(fromGlobalId(id, 'ReresolutionJob').id);
    return job ? toReresolutionJob(job) : null;
  }

  @FieldResolver(() => Customer, { nullable: true })
  customerA(@Root() s: MergeSuggestion, @Ctx() ctx: GraphQLContext): Promise<Customer | null> {
    return ctx.loaders.customer.load(s.customerAUuid);
  }

  @FieldResolver(() => Customer, { nullable: true })
  customerB(@Root() s: MergeSuggestion, @Ctx() ctx: GraphQLContext): Promise<Customer | null> {
    return ctx.loaders.customer.load(s.customerBUuid);
  }
}

@Resolver(() => IdentityChange)
export class IdentityChangeResolver {
  @FieldResolver(() => [Customer], { description: 'the customers as they are now: the survivor, and a restored or split-off one' })
  async customers(@Root() c: IdentityChange, @Ctx() ctx: GraphQLContext): Promise<Customer[]> {
    const found = await ctx.loaders.customer.loadMany(c.customerUuids);
    return found.filter((x): x is Customer => x !== null && !(x instanceof Error));
  }
}

// Per request, without a change to the shared loaders: one batched query per operation.
const historyLoaders = new WeakMap<GraphQLContext, DataLoader<string, MergeRecord[]>>();

@Resolver(() => Customer)
export class CustomerMergeHistoryResolver {
  constructor(private readonly identity: IdentityService) {}

  @Authorized(...READERS)
  @FieldResolver(() => [MergeRecord], { description: 'Merges, unmerges, links and unlinks of this customer, newest first (at most 100)' })
  mergeHistory(@Root() c: Customer, @Ctx() ctx: GraphQLContext): Promise<MergeRecord[]> {
    let loader = historyLoaders.get(ctx);
    if (!loader) {
      loader = new DataLoader(async (ids: readonly string[]) => (await this.identity.historyOf(ids)).map((rows) => rows.map(toMergeRecord)));
      historyLoaders.set(ctx, loader);
    }
    return loader.load(c.uuid);
  }
}
