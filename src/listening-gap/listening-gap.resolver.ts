import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Info, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Customer } from '../customers/customer.type';
import type { GraphQLContext } from '../graphql/context';
import { fromGlobalId } from '../graphql/relay';
import { Interaction } from '../interactions/interaction.type';
import type { ListeningGapService } from './listening-gap.service';
import { listeningItemsSelection } from './listening-items.lookahead';
import {
  AssignItemArgs,
  CloseItemArgs,
  Department,
  DepartmentInsight,
  ListeningItemEvent,
  ListeningItemOrder,
  ListeningItemsArgs,
  ListeningGap,
  ListeningGapArgs,
  ListeningItem,
  ListeningItemConnection,
  OpenItemsArgs,
  SentimentTrendArgs,
  TopicInsight,
  TrendPoint,
  WindowArgs,
} from './listening-gap.type';

@Resolver(() => ListeningItem)
export class ListeningGapResolver {
  constructor(private readonly gap: ListeningGapService) {}

  @Authorized()
  @Query(() => ListeningItemConnection, { description: 'Items waiting for an answer, most urgent first (age against the SLA, negativity, customer value)' })
  openItems(@Args(() => OpenItemsArgs) args: OpenItemsArgs, @Info() info: GraphQLResolveInfo): Promise<ListeningItemConnection> {
    return this.gap.openItems(args, listeningItemsSelection(info));
  }

  @Authorized()
  @Query(() => ListeningItem, { nullable: true, description: 'One listening item by id, whatever its status; null when unknown' })
  listeningItem(@Arg('id', () => ID, { description: 'a ListeningItem id' }) id: string, @Ctx() ctx: GraphQLContext): Promise<ListeningItem | null> {
    return ctx.loaders.listeningItem.load(fromGlobalId(id, 'ListeningItem').id);
  }

  @Authorized()
  @Query(() => ListeningItemConnection, { description: 'Listening items of any status (open, answered, closed) under the filter, newest first by default' })
  listeningItems(@Args(() => ListeningItemsArgs) args: ListeningItemsArgs, @Info() info: GraphQLResolveInfo): Promise<ListeningItemConnection> {
    return this.gap.listeningItems(args.filter ?? {}, args.order ?? ListeningItemOrder.NEWEST, args, listeningItemsSelection(info));
  }

  @Authorized()
  @Query(() => [Department], { description: 'Every department, by name, with its topics and open items' })
  departments(): Promise<Department[]> {
    return this.gap.departments();
  }

  @Authorized()
  @Query(() => ListeningGap, { description: 'How many items opened in [from, to) were answered in time and how many were ignored, overall, by department and by channel' })
  listeningGap(@Args(() => ListeningGapArgs) a: ListeningGapArgs): Promise<ListeningGap> {
    return this.gap.listeningGap(a.from, a.to, a.department, a.channel);
  }

  @Authorized()
  @Query(() => [DepartmentInsight], { description: 'Per department: volume, sentiment and its change, top (negative) topics with examples, open and overdue items' })
  departmentInsights(@Args(() => WindowArgs) a: WindowArgs): Promise<DepartmentInsight[]> {
    return this.gap.departmentInsights(a.from, a.to);
  }

  @Authorized()
  @Query(() => [TrendPoint], { description: 'Inbound sentiment per hour, day or week for a customer, a department, a topic or everything' })
  sentimentTrend(@Args(() => SentimentTrendArgs) a: SentimentTrendArgs): Promise<TrendPoint[]> {
    return this.gap.sentimentTrend(a.scope, a.id, a.bucket, a.from, a.to);
  }

  @Authorized('admin', 'agent')
  @Mutation(() => ListeningItem, { description: 'A person answered (outside the channels Earshot sees): records the first response now' })
  markResponded(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<ListeningItem> {
    return this.gap.markResponded(id, ctx.principal!);
  }

  @Authorized('admin', 'agent')
  @Mutation(() => ListeningItem, { description: 'Closes an item that needs no answer, with the reason' })
  closeItem(@Args(() => CloseItemArgs) a: CloseItemArgs, @Ctx() ctx: GraphQLContext): Promise<ListeningItem> {
    return this.gap.closeItem(a.id, a.reason, ctx.principal!);
  }

  @Authorized('admin', 'agent')
  @Mutation(() => ListeningItem, { description: 'Routes an item to a department and/or a person instead of the department of its topic' })
  assignItem(@Args(() => AssignItemArgs) a: AssignItemArgs, @Ctx() ctx: GraphQLContext): Promise<ListeningItem> {
    return this.gap.assignItem(a.id, a.department, a.user, ctx.principal!);
  }

  @FieldResolver(() => [ListeningItemEvent], { description: 'what happened to the item, oldest first: opened, replied, escalated, assigned, closed … by whom and when' })
  history(@Root() i: ListeningItem, @Ctx() ctx: GraphQLContext): Promise<ListeningItemEvent[]> {
    return ctx.loaders.listeningItemHistory.load(i.uuid);
  }

  @FieldResolver(() => Customer, { nullable: true })
  customer(@Root() i: ListeningItem, @Ctx() ctx: GraphQLContext): Customer | Promise<Customer | null> | null {
    if (i.prefetchedCustomer !== undefined) return i.prefetchedCustomer;
    return i.customerUuid ? ctx.loaders.customer.load(i.customerUuid) : null;
  }

  @FieldResolver(() => Interaction, { nullable: true, description: 'the inbound interaction that opened the item' })
  interaction(@Root() i: ListeningItem, @Ctx() ctx: GraphQLContext): Interaction | Promise<Interaction | null> | null {
    if (i.prefetchedInteraction !== undefined) return i.prefetchedInteraction;
    return ctx.loaders.interaction.load(i.interactionUuid);
  }

  @FieldResolver(() => Interaction, { nullable: true, description: 'the latest inbound interaction of the thread' })
  lastInteraction(@Root() i: ListeningItem, @Ctx() ctx: GraphQLContext): Interaction | Promise<Interaction | null> | null {
    if (i.prefetchedLastInteraction !== undefined) return i.prefetchedLastInteraction;
    return ctx.loaders.interaction.load(i.lastInteractionUuid);
  }
}

@Resolver(() => TopicInsight)
export class TopicInsightResolver {
  @FieldResolver(() => [Interaction], { description: 'the latest negative inbound interactions of the topic in the window (top negative topics only)' })
  async examples(@Root() t: TopicInsight, @Ctx() ctx: GraphQLContext): Promise<Interaction[]> {
    const found = await ctx.loaders.interaction.loadMany(t.exampleIds);
    return found.filter((x): x is Interaction => x !== null && !(x instanceof Error));
  }
}
