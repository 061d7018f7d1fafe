import { Arg, Args, ArgsType, Authorized, Ctx, Field, FieldResolver, ID, InputType, Query, Resolver, Root } from 'type-graphql';
import { IsOptional, MaxLength, ValidateNested } from 'class-validator';
import { displayNameFor } from '../auth/pii.policy';
import type { GraphQLContext } from '../graphql/context';
import { PageArgs } from '../graphql/args';
import { SentimentLabel } from '../graphql/enums';
import { fromGlobalId, pageSize } from '../graphql/relay';
import { InteractionConnection } from '../interactions/interaction.type';
import { CrmRecordRef } from '../crm/crm.type';
import type { CustomerService } from './customer.service';
import { Customer, CustomerConnection, CustomerSentiment, Identity } from './customer.type';

@InputType()
export class CustomerFilter {
  @Field(() => String, { nullable: true, description: 'case-insensitive substring of the display name (for roles without PII: of display names that are no email or phone), at most 200 characters' })
  @IsOptional()
  @MaxLength(200)
  search?: string;

  @Field(() => SentimentLabel, { nullable: true })
  label?: SentimentLabel;
}

@ArgsType()
export class CustomersArgs extends PageArgs {
  // without ValidateNested class-validator never looks inside, and @MaxLength(200) is dead letter
  @Field(() => CustomerFilter, { nullable: true })
  @IsOptional()
  @ValidateNested()
  filter?: CustomerFilter;
}

@Resolver(() => Customer)
export class CustomerResolver {
  constructor(private readonly customerService: CustomerService) {}

  @Authorized()
  @Query(() => CustomerConnection, { description: 'Customers, newest first' })
  customers(@Args(() => CustomersArgs) args: CustomersArgs, @Ctx() ctx: GraphQLContext): Promise<CustomerConnection> {
    return this.customerService.page(args.first, args.after, args.filter, ctx.principal);
  }

  @Authorized()
  @Query(() => Customer, { nullable: true })
  customer(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Customer | null> {
    return ctx.loaders.customer.load(fromGlobalId(id, 'Customer').id);
  }

  @FieldResolver(() => String, { nullable: true, description: 'never an email or a phone number for roles without PII' })
  displayName(@Root() c: Customer, @Ctx() ctx: GraphQLContext): string | null {
    return displayNameFor(ctx.principal, c.displayName);
  }

  @FieldResolver(() => [Identity])
  identities(@Root() c: Customer, @Ctx() ctx: GraphQLContext): Promise<Identity[]> {
    return ctx.loaders.identities.load(c.uuid);
  }

  @FieldResolver(() => [CrmRecordRef], { description: 'Salesforce and HubSpot records of this customer, with deep links' })
  crmRecords(@Root() c: Customer, @Ctx() ctx: GraphQLContext): Promise<CrmRecordRef[]> {
    return ctx.loaders.crmRecords.load(c.uuid);
  }

  @FieldResolver(() => CustomerSentiment)
  sentiment(@Root() c: Customer): CustomerSentiment {
    return c.sentimentRow;
  }

  @FieldResolver(() => InteractionConnection, { description: 'Interactions of this customer, newest first' })
  interactions(@Root() c: Customer, @Args(() => PageArgs) args: PageArgs, @Ctx() ctx: GraphQLContext): Promise<InteractionConnection> {
    return ctx.loaders.customerInteractions.load(JSON.stringify([c.uuid, pageSize(args.first), args.after ?? null]));
  }
}
