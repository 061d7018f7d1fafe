import { Directive, Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLISODateTime } from 'type-graphql';
import { IdentityKind, SentimentLabel } from '../graphql/enums';
import { Connection, Node, type Page } from '../graphql/relay';
import type { Interaction } from '../interactions/interaction.type';
import type { InteractionOrder } from '../interactions/interaction.service';
import type { Window } from '../graphql/keyset';

@ObjectType({ simpleResolvers: true, description: 'One identity of a customer: a CRM record, an email, a phone number, a social handle' })
export class Identity {
  @Field(() => IdentityKind)
  kind!: IdentityKind;

  @Field(() => String, { nullable: true, description: 'social network for handles, CRM system for CRM ids' })
  network!: string | null;

  @Field(() => String, { nullable: true, description: 'normalized value; null when your role may not see it (emails, phones and handles on address channels: admin, agent, sales only)' })
  value!: string | null;

  @Field(() => Boolean, { description: 'true when value is hidden from your role' })
  redacted!: boolean;

  @Field(() => String, { description: 'where Earshot learned it: ingest, salesforce, hubspot, manual' })
  source!: string;
}

@ObjectType({ simpleResolvers: true, description: "The customer's time-decayed sentiment (half-life 30 days) over inbound interactions" })
export class CustomerSentiment {
  @Field(() => Float, { nullable: true, description: '-1..1; null before any inbound interaction' })
  score!: number | null;

  @Field(() => SentimentLabel, { nullable: true })
  label!: SentimentLabel | null;

  @Field(() => Int, { description: 'inbound interactions scored' })
  interactionCount!: number;

  @Field(() => Float, { nullable: true, description: 'mean of the last 30 UTC days minus the mean of the 30 days before, as of today; null when either has no inbound interaction' })
  trend!: number | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  lastInteractionAt!: Date | null;
}

// an entity other subgraphs can join to (Federation 2, src/graphql/federation.ts)
@Directive('@key(fields: "id")')
@ObjectType({ implements: Node, simpleResolvers: true, description: 'A person or organisation: a cluster of identities with their interactions and sentiment' })
export class Customer extends Node {
  /** the database uuid; `id` is the opaque Relay id */
  uuid!: string;

  /** as stored; exposed through CustomerResolver.displayName (src/auth/pii.policy.ts) */
  displayName!: string | null;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  // a plain field: a field resolver that only returned it cost a type-graphql call per customer
  @Field(() => CustomerSentiment, { description: 'time-decayed sentiment summary' })
  sentiment!: CustomerSentiment;

  /** identities read with the page that listed this customer (CustomerService.page), for its viewer */
  prefetchedIdentities?: Identity[];

  /** interactions read with the page that listed this customer, for `window` and `order` */
  prefetchedInteractions?: { window: Window; order: InteractionOrder; page: Page<Interaction> };
}

@ObjectType({ simpleResolvers: true, description: 'A page of customers' })
export class CustomerConnection extends Connection(Customer) {}
