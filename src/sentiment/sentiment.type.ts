import { ArrayMaxSize, ArrayMinSize, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { Field, Float, GraphQLISODateTime, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Intent, SentimentLabel } from '../graphql/enums';
import { ExplanationItem, TopicRef } from '../interactions/interaction.type';

@ObjectType({ description: 'What the analyzer makes of a text; the same fields each stored interaction carries' })
export class TextAnalysis {
  @Field(() => Float, { description: '-1..1' })
  score!: number;

  @Field(() => SentimentLabel, { description: 'positive: score ≥ 0.35; negative: score ≤ -0.35; neutral between' })
  label!: SentimentLabel;

  @Field(() => Float, { description: '0..1; low for languages without a lexicon' })
  confidence!: number;

  @Field(() => Intent)
  intent!: Intent;

  @Field(() => Float)
  intentConfidence!: number;

  @Field(() => String, { description: 'ISO 639-1 code, or und when undetermined' })
  lang!: string;

  @Field(() => [TopicRef])
  topics!: TopicRef[];

  @Field(() => [ExplanationItem], { description: 'the words and signals that moved the score, strongest first' })
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

export enum RetagJobStatus {
  QUEUED = 'queued',
  RUNNING = 'running',
  SUCCEEDED = 'succeeded',
  FAILED = 'failed',
}
registerEnumType(RetagJobStatus, {
  name: 'RetagJobStatus',
  description: 'Where a re-tagging job is',
  valuesConfig: {
    QUEUED: { description: 'waiting for the job before it' },
    RUNNING: { description: 'working through the stored interactions' },
    SUCCEEDED: { description: 'every interaction re-tagged, rollups rebuilt' },
    FAILED: { description: 'stopped; error says why' },
  },
});

@ObjectType({ description: 'Re-tagging of stored interactions after a taxonomy edit' })
export class RetagJob {
  @Field(() => ID, { description: 'opaque global id; pass it to retagJob(id:)' })
  id!: string;

  @Field(() => RetagJobStatus, { description: 'where the job is' })
  status!: RetagJobStatus;

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
