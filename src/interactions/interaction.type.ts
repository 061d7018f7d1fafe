import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, GraphQLISODateTime, InputType, Int, ObjectType } from 'type-graphql';
import { Direction, Intent, SentimentLabel } from '../graphql/enums';
import { Connection, Node } from '../graphql/relay';

@ObjectType({ simpleResolvers: true })
export class Author {
  /** the interaction's channel: on address channels (sms, email, call…) the handle is PII */
  source!: string;

  /** as stored; exposed through AuthorResolver (src/auth/pii.policy.ts) */
  handle!: string | null;

  displayName!: string | null;
}

@ObjectType({ simpleResolvers: true, description: 'A word or signal that moved the score, and by how much' })
export class ExplanationItem {
  @Field(() => String)
  token!: string;

  @Field(() => Float)
  weight!: number;
}

@ObjectType({ simpleResolvers: true })
export class InteractionSentiment {
  @Field(() => Float, { description: '-1 (very negative) .. 1 (very positive)' })
  score!: number;

  @Field(() => SentimentLabel)
  label!: SentimentLabel;

  @Field(() => Float, { description: '0..1' })
  confidence!: number;

  @Field(() => [ExplanationItem])
  explanation!: ExplanationItem[];

  @Field(() => String, {
    nullable: true,
    description: 'the model that scored it (e.g. earshot-linear-2026.12.4, or the name a model server gave); null: scored before models were recorded',
  })
  model!: string | null;
}

@ObjectType({ simpleResolvers: true })
export class TopicRef {
  @Field(() => String)
  name!: string;

  @Field(() => String)
  department!: string;
}

@ObjectType({ implements: Node, simpleResolvers: true })
export class Interaction extends Node {
  uuid!: string;
  customerUuid!: string | null;

  @Field(() => String)
  source!: string;

  @Field(() => String)
  externalId!: string;

  @Field(() => String, { nullable: true })
  url!: string | null;

  @Field(() => String)
  text!: string;

  @Field(() => GraphQLISODateTime)
  occurredAt!: Date;

  @Field(() => Direction)
  direction!: Direction;

  @Field(() => String, { nullable: true, description: 'externalId of the interaction this one answers' })
  inReplyTo!: string | null;

  @Field(() => Author)
  author!: Author;

  @Field(() => String, { nullable: true, description: 'ISO 639-1 code, or und' })
  lang!: string | null;

  @Field(() => Float, { nullable: true })
  rating!: number | null;

  @Field(() => InteractionSentiment)
  sentiment!: InteractionSentiment;

  @Field(() => Intent)
  intent!: Intent;

  @Field(() => Float)
  intentConfidence!: number;

  @Field(() => Boolean, {
    nullable: true,
    description:
      "the analyzer's complaint decision (its complaint model, or a model server's `complaint`); a complaint is unhappy. Null: stored before decisions were recorded (a re-score fills it)",
  })
  complaint!: boolean | null;

  @Field(() => Float, {
    nullable: true,
    description:
      "the complaint model's probability, 0..1 (1 or 0 when a model server said complaint true or false; the built-in model's when it said nothing). Null: stored before decisions were recorded",
  })
  complaintProbability!: number | null;

  @Field(() => Boolean, {
    nullable: true,
    description:
      'negative, or a complaint, or a churn threat: an inbound unhappy message opens a listening item. Null: stored before decisions were recorded (a re-score fills it)',
  })
  unhappy!: boolean | null;
}

@ObjectType({ simpleResolvers: true, description: 'A page of interactions' })
export class InteractionConnection extends Connection(Interaction) {}

@ObjectType()
export class RejectedLine {
  @Field(() => Int, { description: '1-based line (NDJSON) or position in the input list (GraphQL)' })
  line!: number;

  @Field(() => String)
  error!: string;
}

@ObjectType()
export class IngestResult {
  @Field(() => Int)
  accepted!: number;

  @Field(() => Int, { description: 'already stored, or repeated within this request (same source and externalId)' })
  duplicates!: number;

  @Field(() => [RejectedLine])
  rejected!: RejectedLine[];
}

@InputType()
export class CrmIdInput {
  @Field(() => String, { description: 'salesforce or hubspot' })
  system!: string;

  @Field(() => String, { description: 'Contact, Lead, Account (Salesforce); contact, company (HubSpot)' })
  objectType!: string;

  @Field(() => String)
  id!: string;
}

@InputType()
export class AuthorInput {
  @Field(() => String, { nullable: true })
  handle?: string;

  @Field(() => String, { nullable: true })
  displayName?: string;

  @Field(() => String, { nullable: true })
  email?: string;

  @Field(() => String, { nullable: true })
  phone?: string;

  @Field(() => String, { nullable: true })
  profileUrl?: string;

  @Field(() => [CrmIdInput], { nullable: true })
  crmIds?: CrmIdInput[];
}

@InputType({ description: 'One interactions.v1 message (schema/interactions.v1.schema.json)' })
export class InteractionInput {
  @Field(() => String, { nullable: true })
  eventId?: string;

  @Field(() => String)
  source!: string;

  @Field(() => String)
  externalId!: string;

  @Field(() => String, { nullable: true })
  url?: string;

  // A String, checked line by line at the edge as /ingest and Kafka check it: as a DateTimeISO,
  // one entry's unreadable date (2026-02-30, no time zone, a leap second) failed the whole call.
  @Field(() => String, { description: 'when it happened: an RFC 3339 date-time with its offset, from EARSHOT_INGEST_EARLIEST_OCCURRED_AT (1970) to EARSHOT_INGEST_MAX_FUTURE_DAYS (1 day) ahead; an unreadable or out-of-range one rejects its entry alone' })
  occurredAt!: string;

  @Field(() => Direction)
  direction!: Direction;

  @Field(() => String, { nullable: true })
  inReplyTo?: string;

  @Field(() => AuthorInput)
  author!: AuthorInput;

  @Field(() => String)
  text!: string;

  @Field(() => String, { nullable: true })
  lang?: string;

  @Field(() => Float, { nullable: true })
  rating?: number;

  @Field(() => GraphQLJSONObject, { nullable: true })
  metadata?: Record<string, unknown>;
}
