import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';
import { DEFAULT_TAXONOMY, SentimentAnalyzer, type TaxonomyTopic } from './analyzer';
import { phraseWords, TAXONOMY_LIMITS } from './topic.matcher';
import * as repo from './taxonomy.repository';

/**
 * Another replica's taxonomy edit reaches this one's ingest within this time, counted on the
 * monotonic clock: a host clock stepped back an hour (NTP) kept the old taxonomy for that hour.
 */
const CACHE_TTL_MS = 10_000;

export interface LoadedTaxonomy {
  analyzer: SentimentAnalyzer;
  topicIds: Map<string, number>;
  departmentIds: Map<string, number>;
  topics: (TaxonomyTopic & { id: number })[];
}

/** The topic → department taxonomy, stored in the database and cached per process. */
export class TaxonomyService {
  private cached: Promise<LoadedTaxonomy> | null = null;
  private loadedAt = 0;

  constructor(
    private readonly ds: DataSource,
    /**
     * where the cached taxonomy is read: the ingest pool, since every ingest batch needs it, and
     * a reload must not wait behind the API's reads on the main pool (src/app.ts)
     */
    private readonly loadDs: DataSource = ds,
  ) {}

  /** Inserts the default taxonomy into an empty database; leaves an edited one alone. */
  async ensureSeeded(): Promise<void> {
    if ((await repo.countTopics(this.ds)) > 0) return;
    await this.ds.transaction(async (em) => {
      for (const t of DEFAULT_TAXONOMY) {
        const departmentId = await repo.upsertDepartment(em, t.department);
        await repo.insertTopicIfAbsent(em, { name: t.name, label: t.label, departmentId, phrases: t.phrases });
      }
    });
    this.invalidate();
  }

  current(): Promise<LoadedTaxonomy> {
    if (!this.cached || performance.now() - this.loadedAt > CACHE_TTL_MS) {
      this.loadedAt = performance.now();
      this.cached = this.load().catch((e) => {
        this.cached = null;
        throw e;
      });
    }
    return this.cached;
  }

  invalidate(): void {
    this.cached = null;
  }

  /**
   * Creates or replaces a topic (and its department when new). Phrases are trimmed,
   * lower-cased and de-duplicated; a topic needs at least one. The bounds of
   * {@link TAXONOMY_LIMITS} hold for every phrase, the topic and the whole taxonomy.
   */
  async upsertTopic(t: TaxonomyTopic): Promise<TaxonomyTopic> {
    const L = TAXONOMY_LIMITS;
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(t.name)) throw AppError.badInput('topic name: lower-case letters, digits and _, starting with a letter');
    if (t.phrases.length > L.phrasesPerTopic) throw AppError.badInput(`a topic has at most ${L.phrasesPerTopic} phrases (got ${t.phrases.length})`);
    const phrases = [...new Set(t.phrases.map((p) => p.trim().toLowerCase()).filter(Boolean))];
    if (phrases.length === 0) throw AppError.badInput('a topic needs at least one phrase');
    phrases.forEach((p, i) => {
      const shown = JSON.stringify(p.length > 40 ? `${p.slice(0, 40)}…` : p);
      if (p.length > L.charsPerPhrase) throw AppError.badInput(`phrase ${i + 1} (${shown}) has ${p.length} characters: at most ${L.charsPerPhrase}`);
      const words = phraseWords(p).length;
      if (words === 0) throw AppError.badInput(`phrase ${i + 1} (${shown}) has no word to match`);
      if (words > L.wordsPerPhrase) throw AppError.badInput(`phrase ${i + 1} (${shown}) has ${words} words: at most ${L.wordsPerPhrase}`);
    });
    if (!t.department.trim()) throw AppError.badInput('department must not be empty');
    await this.ds.transaction(async (em) => {
      await repo.lockTaxonomyEdits(em);
      const others = await repo.taxonomySizeBesides(em, t.name);
      if (!others.exists && others.topics >= L.topics) throw AppError.badInput(`the taxonomy has at most ${L.topics} topics: delete one first`);
      if (others.phrases + phrases.length > L.phrasesTotal)
        throw AppError.badInput(`the taxonomy has at most ${L.phrasesTotal} phrases in all (the other topics have ${others.phrases}, this one ${phrases.length})`);
      const departmentId = await repo.upsertDepartment(em, t.department.trim());
      await repo.upsertTopic(em, { name: t.name, label: t.label.trim() || t.name, departmentId, phrases });
    });
    this.invalidate();
    return { name: t.name, label: t.label.trim() || t.name, department: t.department.trim(), phrases };
  }

  /** Removes a topic and its tags; its department stays (its history is in the rollups). */
  async deleteTopic(name: string): Promise<void> {
    const deleted = await repo.deleteTopic(this.ds, name);
    if (deleted === 0) throw AppError.notFound(`topic ${JSON.stringify(name)}`);
    this.invalidate();
  }

  private async load(): Promise<LoadedTaxonomy> {
    const rows = await repo.topicsWithDepartments(this.loadDs);
    const topics = rows.map((r) => ({ id: r.id, name: r.name, label: r.label, department: r.department, phrases: r.phrases }));
    return {
      analyzer: new SentimentAnalyzer({ taxonomy: topics }),
      topicIds: new Map(rows.map((r) => [r.name, r.id])),
      departmentIds: new Map(rows.map((r) => [r.department, r.department_id])),
      topics,
    };
  }
}
