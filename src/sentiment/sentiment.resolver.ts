import { Arg, Authorized, Ctx, GraphQLISODateTime, ID, Mutation, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context';
import { Intent, SentimentLabel } from '../graphql/enums';
import type { AnalyzePool } from './analyze.pool';
import type { RescoreJobRow, RescoreJobRunner } from './rescore.job';
import type { RetagJobRow, RetagJobRunner } from './retag.job';
import { fromGlobalId, toGlobalId } from '../graphql/relay';
import type { SentimentScorer } from './sentiment.scorer';
import { RescoreJob, RetagJob, RetagJobStatus, TaxonomyEdit, TextAnalysis, Topic, TopicInput } from './sentiment.type';
import type { TaxonomyService } from './taxonomy.service';

const MAX_TEXT = 1024 * 1024;

export function toRetagJob(r: RetagJobRow): RetagJob {
  return {
    id: toGlobalId('RetagJob', r.id),
    status: r.status as RetagJobStatus,
    reason: r.reason,
    total: r.total,
    done: r.done,
    changed: r.changed,
    progress: r.status === 'succeeded' ? 1 : r.total > 0 ? r.done / r.total : 0,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

export function toRescoreJob(r: RescoreJobRow): RescoreJob {
  return {
    id: r.id,
    status: r.status,
    phase: r.phase,
    total: r.total,
    done: r.done,
    changed: r.changed,
    itemsOpened: r.items_opened,
    customersUpdated: r.customers_updated,
    models: Object.entries(r.models ?? {})
      .map(([model, count]) => ({ model, count: Number(count) }))
      .sort((a, b) => b.count - a.count || (a.model < b.model ? -1 : 1)),
    // the last page and the rollups are still to come until it says succeeded
    progress: r.status === 'succeeded' ? 1 : r.total > 0 ? Math.min(0.99, r.done / r.total) : 0,
    openItemsSince: r.open_items_since,
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

@Resolver()
export class SentimentResolver {
  constructor(
    private readonly taxonomy: TaxonomyService,
    private readonly retag: RetagJobRunner,
    private readonly pool: AnalyzePool,
    private readonly scorer: SentimentScorer,
    private readonly rescore: RescoreJobRunner,
  ) {}

  @Authorized()
  @Query(() => TextAnalysis, { description: 'Scores a text with the analyzer and the current taxonomy, without storing it. One request may hand it at most EARSHOT_ANALYZE_MAX_TEXT_BYTES of text in all (256 KiB by default), over every alias' })
  async analyzeText(
    @Arg('text', () => String) text: string,
    @Arg('lang', () => String, { nullable: true }) lang?: string,
  ): Promise<TextAnalysis> {
    const input = text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text;
    // a team's own model server scores it when one is configured (falling back like ingest does);
    // otherwise the built-in model, on a worker thread for large texts
    const a = this.scorer.external ? (await this.scorer.analyzeBatch([{ text: input, lang }]))[0] : await this.pool.analyze(input, lang, await this.taxonomy.current());
    return {
      ...a!,
      label: a!.label as SentimentLabel,
      intent: a!.intent as Intent,
      topics: a!.topics.map((t) => ({ name: t.name, department: t.department })),
    };
  }

  @Authorized()
  @Query(() => [Topic], { description: 'The topic → department taxonomy' })
  async topics(): Promise<Topic[]> {
    return (await this.taxonomy.current()).topics.map(({ name, label, department, phrases }) => ({ name, label, department, phrases }));
  }

  @Authorized('admin')
  @Mutation(() => TaxonomyEdit, { description: 'Creates or replaces a topic, then re-tags stored interactions in the background' })
  async upsertTopic(@Arg('input', () => TopicInput) input: TopicInput, @Ctx() ctx: GraphQLContext): Promise<TaxonomyEdit> {
    const topic = await this.taxonomy.upsertTopic(input);
    const job = await this.retag.enqueue(`topic ${topic.name} saved`, ctx.principal!.id);
    return { topic, job: toRetagJob(job) };
  }

  @Authorized('admin')
  @Mutation(() => TaxonomyEdit, { description: 'Deletes a topic and its tags, then re-tags and rebuilds department rollups in the background' })
  async deleteTopic(@Arg('name', () => String) name: string, @Ctx() ctx: GraphQLContext): Promise<TaxonomyEdit> {
    await this.taxonomy.deleteTopic(name);
    const job = await this.retag.enqueue(`topic ${name} deleted`, ctx.principal!.id);
    return { topic: null, job: toRetagJob(job) };
  }

  @Authorized('admin', 'analyst')
  @Query(() => RetagJob, { nullable: true, description: 'Status and progress of a re-tagging job; null when unknown' })
  async retagJob(@Arg('id', () => ID, { description: 'the job id from upsertTopic or deleteTopic' }) id: string): Promise<RetagJob | null> {
    const job = await this.retag.find(fromGlobalId(id, 'RetagJob').id);
    return job ? toRetagJob(job) : null;
  }

  @Authorized('admin')
  @Mutation(() => RescoreJob, {
    description:
      'Re-analyzes every stored interaction with the current model in the background: scores, labels, intents, complaint and unhappy decisions, explanations and the model name; customer, department and topic rollups; listening items for messages now unhappy (never reopening answered or closed ones). CONFLICT while another re-score is active.',
  })
  async startRescore(
    @Ctx() ctx: GraphQLContext,
    @Arg('openItemsSince', () => GraphQLISODateTime, {
      nullable: true,
      description: 'open listening items only for messages from this time on (older ones still get their new scores); default: all',
    })
    openItemsSince?: Date | null,
  ): Promise<RescoreJob> {
    return toRescoreJob(await this.rescore.start(ctx.principal!.id, openItemsSince ?? null));
  }

  @Authorized('admin', 'analyst')
  @Query(() => RescoreJob, { description: 'Progress of a re-score job' })
  async rescoreJob(@Arg('id', () => ID) id: string): Promise<RescoreJob> {
    return toRescoreJob(await this.rescore.get(id));
  }
}
