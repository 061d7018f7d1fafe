import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context';
import { Intent, SentimentLabel } from '../graphql/enums';
import type { AnalyzePool } from './analyze.pool';
import type { RetagJobRow, RetagJobRunner } from './retag.job';
import { RetagJob, TaxonomyEdit, TextAnalysis, Topic, TopicInput } from './sentiment.type';
import type { TaxonomyService } from './taxonomy.service';

const MAX_TEXT = 1024 * 1024;

export function toRetagJob(r: RetagJobRow): RetagJob {
  return {
    id: r.id,
    status: r.status,
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

@Resolver()
export class SentimentResolver {
  constructor(
    private readonly taxonomy: TaxonomyService,
    private readonly retag: RetagJobRunner,
    private readonly scorer: AnalyzePool,
  ) {}

  @Authorized()
  @Query(() => TextAnalysis, { description: 'Scores a text with the analyzer and the current taxonomy, without storing it. One request may hand it at most EARSHOT_ANALYZE_MAX_TEXT_BYTES of text in all (256 KiB by default), over every alias' })
  async analyzeText(
    @Arg('text', () => String) text: string,
    @Arg('lang', () => String, { nullable: true }) lang?: string,
  ): Promise<TextAnalysis> {
    const a = await this.scorer.analyze(text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text, lang, await this.taxonomy.current());
    return {
      ...a,
      label: a.label as SentimentLabel,
      intent: a.intent as Intent,
      topics: a.topics.map((t) => ({ name: t.name, department: t.department })),
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
  @Query(() => RetagJob)
  async retagJob(@Arg('id', () => ID) id: string): Promise<RetagJob> {
    return toRetagJob(await this.retag.get(id));
  }
}

