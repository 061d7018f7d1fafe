import { MaxLength, MinLength } from 'class-validator';
import { ArgsType, Field, Float, GraphQLISODateTime, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { PageArgs } from '../graphql/args';
import { CrmSystemEnum } from '../crm/crm.type';
import { Intent } from '../graphql/enums';
import { Connection, Node } from '../graphql/relay';
import type { Customer } from '../customers/customer.type';
import type { Interaction } from '../interactions/interaction.type';

export enum ListeningItemStatus {
  OPEN = 'open',
  ANSWERED = 'answered',
  CLOSED = 'closed',
}
registerEnumType(ListeningItemStatus, {
  name: 'ListeningItemStatus',
  description: 'open: waiting for a first (or, after a new complaint, a next) response; answered: a reply or a person answered; closed: closed by a person or its CRM case',
});

export enum TrendScope {
  CUSTOMER = 'customer',
  DEPARTMENT = 'department',
  TOPIC = 'topic',
  ALL = 'all',
}
registerEnumType(TrendScope, { name: 'TrendScope', description: 'CUSTOMER: id is a Customer id; DEPARTMENT: a department name; TOPIC: a topic name; ALL: no id' });

export enum TrendBucket {
  HOUR = 'hour',
  DAY = 'day',
  WEEK = 'week',
}
registerEnumType(TrendBucket, { name: 'TrendBucket', description: 'UTC buckets; weeks start on Monday' });

@ObjectType()
export class Escalation {
  @Field(() => GraphQLISODateTime)
  escalatedAt!: Date;

  @Field(() => CrmSystemEnum, { nullable: true, description: 'the CRM the case or ticket is in; null when escalated to no CRM' })
  system!: CrmSystemEnum | null;

  @Field(() => String, { nullable: true, description: 'Salesforce Case id or HubSpot ticket id' })
  caseId!: string | null;

  @Field(() => String, { nullable: true })
  caseUrl!: string | null;
}

@ObjectType({ implements: Node, simpleResolvers: true, description: 'A conversation thread waiting for (or given) an answer: the unit of the listening gap' })
export class ListeningItem extends Node {
  uuid!: string;
  customerUuid!: string | null;
  interactionUuid!: string;
  lastInteractionUuid!: string;

  /** the customer read with the page that listed this item (null: none); undefined: not read, load it */
  prefetchedCustomer?: Customer | null;

  /** the opening interaction read with the page that listed this item; undefined: not read, load it */
  prefetchedInteraction?: Interaction | null;

  /** the latest inbound interaction read with the page that listed this item; undefined: not read, load it */
  prefetchedLastInteraction?: Interaction | null;

  @Field(() => ListeningItemStatus)
  status!: ListeningItemStatus;

  @Field(() => String, { description: 'the source of the thread (x, email, …)' })
  channel!: string;

  @Field(() => String, { description: 'the department it is routed to: the assigned one, else the one of its topic' })
  department!: string;

  @Field(() => String, { description: 'the department of its topic (or the default department)' })
  topicDepartment!: string;

  @Field(() => String, { nullable: true })
  assignedUser!: string | null;

  @Field(() => Intent)
  intent!: Intent;

  @Field(() => Float, { description: 'the most negative sentiment score in the thread' })
  sentimentScore!: number;

  @Field(() => GraphQLISODateTime)
  openedAt!: Date;

  @Field(() => GraphQLISODateTime, { description: 'openedAt, or when a new complaint reopened the thread' })
  lastOpenedAt!: Date;

  @Field(() => Int)
  slaSeconds!: number;

  @Field(() => GraphQLISODateTime, { description: 'when the (next) response is due; business hours applied when configured' })
  dueAt!: Date;

  @Field(() => Boolean, { description: 'open and past dueAt' })
  overdue!: boolean;

  @Field(() => Int, { description: 'seconds since lastOpenedAt' })
  ageSeconds!: number;

  @Field(() => Float, { description: 'sort key of openItems: age relative to the SLA, negativity and customer value' })
  urgency!: number;

  @Field(() => GraphQLISODateTime, { nullable: true })
  firstResponseAt!: Date | null;

  @Field(() => Int, { nullable: true })
  firstResponseSeconds!: number | null;

  @Field(() => String, { nullable: true, description: 'reply, person or crm' })
  respondedBy!: string | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  closedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'reply, crm_case_closed, marked_responded, or the reason given to closeItem' })
  closeReason!: string | null;

  @Field(() => Int)
  reopenedCount!: number;

  @Field(() => Escalation, { nullable: true })
  escalation!: Escalation | null;
}

@ObjectType({ simpleResolvers: true, description: 'A page of listening items' })
export class ListeningItemConnection extends Connection(ListeningItem) {}

export enum ListeningItemOrder {
  URGENCY = 'urgency',
  DUE = 'due',
  OLDEST = 'oldest',
  NEWEST = 'newest',
  OPENED = 'opened',
}
registerEnumType(ListeningItemOrder, {
  name: 'ListeningItemOrder',
  description: 'Orders of listening item lists',
  valuesConfig: {
    URGENCY: { description: 'most urgent first: age against the SLA, negativity, customer value (the clock frozen at the first page)' },
    DUE: { description: 'earliest due time first' },
    OLDEST: { description: 'longest waiting first (by lastOpenedAt)' },
    NEWEST: { description: 'most recently (re)opened first' },
    OPENED: { description: 'first opened first (by openedAt, which nothing changes): the order to read every item in, as no reopening, answer or re-score moves an item while a client pages' },
  },
});

export enum ListeningItemEventKind {
  OPENED = 'opened',
  REOPENED = 'reopened',
  REPLIED = 'replied',
  RESPONDED = 'responded',
  ESCALATED = 'escalated',
  ASSIGNED = 'assigned',
  CLOSED = 'closed',
}
registerEnumType(ListeningItemEventKind, {
  name: 'ListeningItemEventKind',
  description: 'What happened to a listening item',
  valuesConfig: {
    OPENED: { description: 'an inbound complaint or question opened it' },
    REOPENED: { description: 'a new complaint in an answered or closed thread opened it again' },
    REPLIED: { description: 'an outbound reply in the thread answered it' },
    RESPONDED: { description: 'a person (markResponded) or the CRM answered it' },
    ESCALATED: { description: 'it was past due and escalated to the CRM' },
    ASSIGNED: { description: 'routed to a department and/or a person' },
    CLOSED: { description: 'closed without an answer (a person, or its CRM case closed)' },
  },
});

@ObjectType({ description: 'One step in the life of a listening item' })
export class ListeningItemEvent {
  @Field(() => ListeningItemEventKind, { description: 'what happened' })
  kind!: ListeningItemEventKind;

  @Field(() => String, { nullable: true, description: 'who: the API key name or JWT subject of a person, else ingest, reply, crm, escalation or system' })
  actor!: string | null;

  @Field(() => GraphQLISODateTime, { description: 'when' })
  at!: Date;

  @Field(() => String, { nullable: true, description: 'details as a JSON object (reason, department and user, CRM system and case id …)' })
  detail!: string | null;
}

@ObjectType({ description: 'A department that topics route to and listening items are assigned to' })
export class Department {
  @Field(() => String, { description: 'its name, as used in filters and assignItem' })
  name!: string;

  @Field(() => [String], { description: 'names of the topics routed to it' })
  topics!: string[];

  @Field(() => Int, { description: 'open listening items routed to it now' })
  openItems!: number;
}

@InputType({ description: 'Which listening items to list (all of these must match)' })
export class ListeningItemFilter {
  @Field(() => [ListeningItemStatus], { nullable: true, description: 'any of these statuses; all when omitted' })
  status?: ListeningItemStatus[];

  @Field(() => String, { nullable: true, description: 'the routed department (assigned, else of the topic)' })
  department?: string;

  @Field(() => String, { nullable: true, description: 'the channel (source) of the thread' })
  channel?: string;

  @Field(() => String, { nullable: true, description: 'the assigned user' })
  assignee?: string;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'opened at or after this time' })
  from?: Date;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'opened before this time' })
  to?: Date;
}

@ArgsType()
export class ListeningItemsArgs extends PageArgs {
  @Field(() => ListeningItemFilter, { nullable: true, description: 'all items when omitted' })
  filter?: ListeningItemFilter;

  @Field(() => ListeningItemOrder, { nullable: true, defaultValue: ListeningItemOrder.NEWEST, description: 'list order (default NEWEST)' })
  order?: ListeningItemOrder;
}

@ArgsType()
export class OpenItemsArgs extends PageArgs {
  @Field(() => String, { nullable: true, description: 'the routed department (assigned, else of the topic)' })
  department?: string;

  @Field(() => String, { nullable: true })
  channel?: string;

  @Field(() => Boolean, { nullable: true, defaultValue: false })
  overdueOnly?: boolean;
}

@ObjectType({ description: 'Items opened in the window. received = answered + ignored + pending + dismissed' })
export class GapFigures {
  @Field(() => Int, { description: 'items opened in the window' })
  received!: number;

  @Field(() => Int, { description: 'first response (reply, markResponded or CRM) by the due time' })
  answered!: number;

  @Field(() => Int, { description: 'no first response by the due time: still waiting past it, answered late, or closed after it without an answer' })
  ignored!: number;

  @Field(() => Int, { description: 'open and not yet due' })
  pending!: number;

  @Field(() => Int, { description: 'closed by a person without an answer before the due time' })
  dismissed!: number;

  @Field(() => Float, { description: 'ignored / received; 0 when nothing was received' })
  ignoredShare!: number;

  @Field(() => Float, { nullable: true, description: 'median first-response time of the items answered so far (any time)' })
  medianFirstResponseSeconds!: number | null;

  @Field(() => Float, { nullable: true })
  p90FirstResponseSeconds!: number | null;
}

@ObjectType()
export class DepartmentGap extends GapFigures {
  @Field(() => String)
  department!: string;
}

@ObjectType()
export class ChannelGap extends GapFigures {
  @Field(() => String)
  channel!: string;
}

@ObjectType()
export class ListeningGap extends GapFigures {
  @Field(() => [DepartmentGap])
  byDepartment!: DepartmentGap[];

  @Field(() => [ChannelGap])
  byChannel!: ChannelGap[];
}

@ObjectType()
export class TopicInsight {
  exampleIds!: string[];

  @Field(() => String)
  topic!: string;

  @Field(() => String)
  label!: string;

  @Field(() => Int, { description: 'inbound interactions with the topic in the window' })
  volume!: number;

  @Field(() => Int)
  negativeCount!: number;

  @Field(() => Float, { nullable: true })
  averageSentiment!: number | null;
}

@ObjectType()
export class DepartmentInsight {
  @Field(() => String)
  department!: string;

  @Field(() => Int, { description: 'inbound interactions with a topic of the department in the window' })
  volume!: number;

  @Field(() => Float, { nullable: true })
  averageSentiment!: number | null;

  @Field(() => Float, { nullable: true, description: 'average of the window of the same length just before' })
  previousAverageSentiment!: number | null;

  @Field(() => Float, { nullable: true, description: 'averageSentiment − previousAverageSentiment' })
  sentimentChange!: number | null;

  @Field(() => Float, { description: 'share of negative interactions in the window' })
  negativeShare!: number;

  @Field(() => [TopicInsight], { description: 'up to 5 topics by volume' })
  topTopics!: TopicInsight[];

  @Field(() => [TopicInsight], { description: 'up to 3 topics by negative interactions, with the latest negative examples' })
  topNegativeTopics!: TopicInsight[];

  @Field(() => Int, { description: 'open items routed to the department now' })
  openItems!: number;

  @Field(() => Int, { description: 'open items past their due time now' })
  overdueItems!: number;
}

@ObjectType()
export class TrendPoint {
  @Field(() => GraphQLISODateTime)
  start!: Date;

  @Field(() => Int)
  count!: number;

  @Field(() => Float, { nullable: true })
  averageScore!: number | null;

  @Field(() => Int)
  negativeCount!: number;

  @Field(() => Int)
  positiveCount!: number;
}

@ArgsType()
export class WindowArgs {
  @Field(() => GraphQLISODateTime, { description: 'inclusive' })
  from!: Date;

  @Field(() => GraphQLISODateTime, { description: 'exclusive' })
  to!: Date;
}

@ArgsType()
export class ListeningGapArgs extends WindowArgs {
  @Field(() => String, { nullable: true })
  department?: string;

  @Field(() => String, { nullable: true })
  channel?: string;
}

@ArgsType()
export class SentimentTrendArgs extends WindowArgs {
  @Field(() => TrendScope)
  scope!: TrendScope;

  @Field(() => ID, { nullable: true })
  id?: string;

  @Field(() => TrendBucket)
  bucket!: TrendBucket;
}

@ArgsType()
export class AssignItemArgs {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { nullable: true, description: 'routes the item to this department (must exist)' })
  department?: string;

  @Field(() => String, { nullable: true, description: 'a user id or name; empty string clears it' })
  user?: string;
}

@ArgsType()
export class CloseItemArgs {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'why it needs no answer (spam, duplicate, handled elsewhere…)' })
  @MinLength(1)
  @MaxLength(500)
  reason!: string;
}
