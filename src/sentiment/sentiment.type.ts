import { ArrayMaxSize, ArrayMinSize, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { Field, Float, GraphQLISODateTime, ID, InputType, Int, ObjectType } from 'type-graphql';
import { Intent, SentimentLabel } from '../graphql/enums';
import { ExplanationItem, TopicRef } from '../interactions/interaction.type';

@ObjectType({ description: 'What the analyzer makes of a text; the same fields each stored interaction carries' })
export class TextAnalysis {
  @Field(() => Float, { description: '-1..1' })
  score!: number;

  @Field(() => SentimentLabel, { description: "the model's three-class decision; never positive with score ≤ 0 nor negative with score ≥ 0" })
  label!: SentimentLabel;

  @Field(() => Float, { description: '0..1: the probability of the label; low for languages without a model' })
  confidence!: number;

  @Field(() => Intent)
  intent!: Intent;

  @Field(() => Float)
  intentConfidence!: number;

  @Field(() => Boolean, { description: "the complaint model's decision" })
  complaint!: boolean;

  @Field(() => Float, { description: '0..1' })
  complaintProbability!: number;

  @Field(() => Boolean, { description: 'negative, a complaint or a churn threat: opens a listening item when inbound' })
  unhappy!: boolean;

  @Field(() => Float, { description: 'score = tanh(logit); the explanation weights add up to it' })
  logit!: number;

  @Field(() => String, { description: 'the versioned name of the model that scored the text: the built-in one, or the model server of EARSHOT_SENTIMENT_URL' })
  model!: string;

  @Field(() => String, { description: 'ISO 639-1 code, or und when undetermined' })
  lang!: string;

  @Field(() => [TopicRef])
  topics!: TopicRef[];

  @Field(() => [ExplanationItem], { description: 'the tokens and signals that moved the score, strongest first, then (other features) and (baseline); the weights add up to logit' })
  explanation!: ExplanationItem[];

}

@ObjectType({ description: 'A taxonomy topic: phrases that route interactions to a department' })
export class Topic {
  @Field(() => String)
  name!: string;

  @Field(() => String)
  label!: string;

  @Field(() => String)
  department!: string;

  @Field(() => [String])
  phrases!: string[];
}

@InputType()
export class TopicInput {
  @Field(() => String, { description: 'stable machine name: lower-case letters, digits and _' })
  @Matches(/^[a-z][a-z0-9_]{0,62}$/)
  name!: string;

  @Field(() => String)
  @IsString()
  @MaxLength(200)
  label!: string;

  @Field(() => String)
  @MinLength(1)
  @MaxLength(200)
  department!: string;

  @Field(() => [String], { description: 'matched on whole words after light stemming' })
  @ArrayMinSize(1)
  @ArrayMaxSize(500)
  phrases!: string[];
}

@ObjectType({ description: 'Re-tagging of stored interactions after a taxonomy edit' })
export class RetagJob {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'queued, running, succeeded or failed' })
  status!: string;

  @Field(() => String)
  reason!: string;

  @Field(() => Int)
  total!: number;

  @Field(() => Int)
  done!: number;

  @Field(() => Int, { description: 'interactions whose topics changed' })
  changed!: number;

  @Field(() => Float, { description: '0..1' })
  progress!: number;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true })
  finishedAt!: Date | null;
}

@ObjectType()
export class TaxonomyEdit {
  @Field(() => Topic, { nullable: true })
  topic!: Topic | null;

  @Field(() => RetagJob)
  job!: RetagJob;
}

@ObjectType({ description: 'How many texts one model scored' })
export class ModelCount {
  @Field(() => String)
  model!: string;

  @Field(() => Int)
  count!: number;
}

@ObjectType({ description: 'Re-scoring of stored interactions with the current model' })
export class RescoreJob {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'queued, running, succeeded or failed' })
  status!: string;

  @Field(() => String, { description: 'interactions (pages of stored interactions), rollups (department and topic rollups), done' })
  phase!: string;

  @Field(() => Int, { description: 'stored interactions when the job started' })
  total!: number;

  @Field(() => Int, { description: 'interactions re-analyzed so far (those stored during the run may make it exceed total)' })
  done!: number;

  @Field(() => Int, { description: 'interactions whose score, label, intent, explanation or model changed' })
  changed!: number;

  @Field(() => Int, { description: 'listening items opened for messages the model now finds unhappy' })
  itemsOpened!: number;

  @Field(() => Int, { description: 'customers whose sentiment summary changed' })
  customersUpdated!: number;

  @Field(() => [ModelCount], { description: 'texts per model that scored them in this run (the built-in model counts fallbacks from a failing model server)' })
  models!: ModelCount[];

  @Field(() => Float, { description: '0..1' })
  progress!: number;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'listening items were opened only for messages from this time on' })
  openItemsSince!: Date | null;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true })
  startedAt!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  finishedAt!: Date | null;
}
