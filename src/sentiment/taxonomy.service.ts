import type { DataSource } from 'typeorm';
import { DEFAULT_TAXONOMY, SentimentAnalyzer, type TaxonomyTopic } from './analyzer';

export interface LoadedTaxonomy {
  analyzer: SentimentAnalyzer;
  topicIds: Map<string, number>;
  departmentIds: Map<string, number>;
  topics: (TaxonomyTopic & { id: number })[];
}

/** The topic → department taxonomy, stored in the database and cached per process. */
export class TaxonomyService {
  private cached: Promise<LoadedTaxonomy> | null = null;

  constructor(private readonly ds: DataSource) {}

  /** Inserts the default taxonomy into an empty database; leaves an edited one alone. */
  async ensureSeeded(): Promise<void> {
    const [{ n }] = await this.ds.query('SELECT count(*)::int AS n FROM topic');
    if (n > 0) return;
    await this.ds.transaction(async (em) => {
      for (const t of DEFAULT_TAXONOMY) {
        const [dept] = await em.query(
          `INSERT INTO department (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
          [t.department],
        );
        await em.query(
          `INSERT INTO topic (name, label, department_id, phrases) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`,
          [t.name, t.label, dept.id, t.phrases],
        );
      }
    });
    this.invalidate();
  }

  current(): Promise<LoadedTaxonomy> {
    if (!this.cached) {
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

  private async load(): Promise<LoadedTaxonomy> {
    const rows: { id: number; name: string; label: string; phrases: string[]; department: string; department_id: number }[] =
      await this.ds.query(
        `SELECT t.id, t.name, t.label, t.phrases, d.name AS department, d.id AS department_id
           FROM topic t JOIN department d ON d.id = t.department_id ORDER BY t.id`,
      );
    const topics = rows.map((r) => ({ id: r.id, name: r.name, label: r.label, department: r.department, phrases: r.phrases }));
    return {
      analyzer: new SentimentAnalyzer({ taxonomy: topics }),
      topicIds: new Map(rows.map((r) => [r.name, r.id])),
      departmentIds: new Map(rows.map((r) => [r.department, r.department_id])),
      topics,
    };
  }
}
