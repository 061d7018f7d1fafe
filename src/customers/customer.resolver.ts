import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Args, ArgsType, Authorized, Ctx, Field, FieldResolver, ID, Info, InputType, Query, registerEnumType, Resolver, Root } from 'type-graphql';
import { IsOptional, MaxLength, ValidateNested } from 'class-validator';
import { displayNameFor } from '../auth/pii.policy';
import type { GraphQLContext } from '../graphql/context';
import { PageArgs } from '../graphql/args';
import { SentimentLabel } from '../graphql/enums';
import { fromGlobalId } from '../graphql/relay';
import { InteractionOrder } from '../interactions/interaction.service';
import { InteractionConnection } from '../interactions/interaction.type';
import { CrmRecordRef } from '../crm/crm.type';
import { customerPageSelection } from './customer-page.lookahead';
import { CustomerOrder, sameInteractionsPage, type CustomerService } from './customer.service';
import { Customer, CustomerConnection, Identity } from './customer.type';

registerEnumType(CustomerOrder, {
  name: 'CustomerOrder',
  description: 'Orders of the customer list',
  valuesConfig: {
    NEWEST: { description: 'newest customers first (by creation)' },
    MOST_NEGATIVE: { description: 'lowest sentiment score first; customers without a score last' },
    MOST_POSITIVE: { description: 'highest sentiment score first; customers without a score last' },
    LAST_ACTIVITY: { description: 'most recent interaction first; customers without one last' },
    OPEN_ITEMS: { description: 'most open listening items first' },
  },
});

registerEnumType(InteractionOrder, {
  name: 'InteractionOrder',
  description: 'Orders of interaction lists, by occurredAt',
  valuesConfig: { NEWEST: { description: 'latest first' }, OLDEST: { description: 'earliest first' } },
});

@InputType({ description: 'Which customers to list' })
export class CustomerFilter {
  @Field(() => String, {
    nullable: true,
    description: 'case-insensitive substring of the display name (for roles without PII: of display names that are no email or phone); for roles that may see PII (admin, agent, sales) also of an email, phone number or handle; at most 200 characters',
  })
  @IsOptional()
  @MaxLength(200)
  search?: string;

  @Field(() => SentimentLabel, { nullable: true, description: 'only customers whose current label is this' })
  label?: SentimentLabel;
}

@ArgsType()
export class CustomersArgs extends PageArgs {
  // without ValidateNested class-validator never looks inside, and @MaxLength(200) is dead letter
  @Field(() => CustomerFilter, { nullable: true, description: 'all customers when omitted' })
  @IsOptional()
  @ValidateNested()
  filter?: CustomerFilter;

  @Field(() => CustomerOrder, { nullable: true, defaultValue: CustomerOrder.NEWEST, description: 'list order (default NEWEST)' })
  order?: CustomerOrder;
}

/** No class-validator rules (the keyset pager checks the window): resolved without a validation pass per customer. */
@ArgsType()
export class CustomerInteractionsArgs extends PageArgs {
  @Field(() => InteractionOrder, { nullable: true, defaultValue: InteractionOrder.NEWEST, description: 'list order (default NEWEST)' })
  order?: InteractionOrder;
}

@Resolver(() => Customer)
export class CustomerResolver {
  constructor(private readonly customerService: CustomerService) {}

  @Authorized()
  @Query(() => CustomerConnection, { description: 'Customers in the asked order (newest first by default), filtered' })
  customers(@Args(() => CustomersArgs) args: CustomersArgs, @Ctx() ctx: GraphQLContext, @Info() info: GraphQLResolveInfo): Promise<CustomerConnection> {
    const selection = customerPageSelection(info);
    return this.customerService.page(args, args.filter ?? {}, args.order ?? CustomerOrder.NEWEST, ctx.principal, {
      identities: selection.identities,
      interactions: selection.interactions ? { ...selection.interactions, countOf: (id) => ctx.loaders.customerInteractionCount.load(id) } : undefined,
    });
  }

  @Authorized()
  @Query(() => Customer, { nullable: true, description: 'One customer by id (a merged-away id answers its survivor); null when unknown' })
  customer(@Arg('id', () => ID, { description: 'a Customer id' }) id: string, @Ctx() ctx: GraphQLContext): Promise<Customer | null> {
    return ctx.loaders.customer.load(fromGlobalId(id, 'Customer').id);
  }

  @FieldResolver(() => String, { nullable: true, description: 'never an email or a phone number for roles without PII' })
  displayName(@Root() c: Customer, @Ctx() ctx: GraphQLContext): string | null {
    return displayNameFor(ctx.principal, c.displayName);
  }

  @FieldResolver(() => [Identity], { description: "the customer's identities; emails and phones only for roles allowed PII" })
  identities(@Root() c: Customer, @Ctx() ctx: GraphQLContext): Identity[] | Promise<Identity[]> {
    return c.prefetchedIdentities ?? ctx.loaders.identities.load(c.uuid);
  }

  @FieldResolver(() => [CrmRecordRef], { description: 'Salesforce and HubSpot records of this customer, with deep links' })
  crmRecords(@Root() c: Customer, @Ctx() ctx: GraphQLContext): Promise<CrmRecordRef[]> {
    return ctx.loaders.crmRecords.load(c.uuid);
  }

  @FieldResolver(() => InteractionConnection, { description: 'Interactions of this customer, newest first by default' })
  interactions(@Root() c: Customer, @Args(() => CustomerInteractionsArgs, { validate: false }) args: CustomerInteractionsArgs, @Ctx() ctx: GraphQLContext): InteractionConnection | Promise<InteractionConnection> {
    const w = { first: args.first ?? null, after: args.after ?? null, last: args.last ?? null, before: args.before ?? null };
    const order = args.order ?? InteractionOrder.NEWEST;
    const prefetched = c.prefetchedInteractions;
    if (prefetched && sameInteractionsPage(prefetched, { window: w, order })) return prefetched.page;
    return ctx.loaders.customerInteractions.load(JSON.stringify([c.uuid, w, order]));
  }
}
