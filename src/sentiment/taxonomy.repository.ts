import { exec, firstRow, modify, rows, type Db } from '../db/sql';

/** Every SQL statement of the topic → department taxonomy, each returning a declared row type. */

export interface TopicRow {
  id: number;
  name: string;
  label: string;
  phrases: string[];
  department: string;
  department_id: number;
}

/**
 * Which of `ids` are topics still, each locked (FOR KEY SHARE) until the caller's transaction
 * ends: the re-tag job tags a chunk with these only. A topic deleted since the job loaded the
 * taxonomy is left out instead of failing the chunk's foreign key; a delete that comes after
 * waits for the chunk and then takes its tags along. (Ingest does not lock: it runs a batch
 * again with the taxonomy reloaded when that foreign key fails, which costs nothing until then.)
 */
export async function lockLiveTopics(db: Db, ids: readonly number[]): Promise<Set<number>> {
  const found = await rows<{ id: number }>(db, 'SELECT id FROM topic WHERE id = ANY($1::int[]) ORDER BY id FOR KEY SHARE', [ids]);
  return new Set(found.map((r) => r.id));
}

/**
 * pg_advisory_xact_lock key: one taxonomy edit at a time, so the size bounds hold under concurrent
 * edits. Its own key: the re-score runner holds 7_041_977 for a whole job, the re-tag runner 7_041_976.
 */
const EDIT_LOCK = 7_041_978;

/** Waits for the other taxonomy edits to commit; held until the caller's transaction ends. */
export async function lockTaxonomyEdits(db: Db): Promise<void> {
  await exec(db, 'SELECT pg_advisory_xact_lock($1)', [EDIT_LOCK]);
}

/** How many topics and phrases the taxonomy holds besides the topic `name`, and whether that one exists. */
export async function taxonomySizeBesides(db: Db, name: string): Promise<{ topics: number; phrases: number; exists: boolean }> {
  const [r] = await rows<{ topics: number; phrases: number; exists: boolean }>(
    db,
    `SELECT count(*) FILTER (WHERE name <> $1)::int AS topics,
            coalesce(sum(cardinality(phrases)) FILTER (WHERE name <> $1), 0)::int AS phrases,
            bool_or(name = $1) IS TRUE AS exists
       FROM topic`,
    [name],
  );
  return r;
}

export async function countTopics(db: Db): Promise<number> {
  const [{ n }] = await rows<{ n: number }>(db, 'SELECT count(*)::int AS n FROM topic');
  return n;
}

/** The department's id, inserting it when new. */
export async function upsertDepartment(db: Db, name: string): Promise<number> {
  const dept = await firstRow<{ id: number }>(
    db,
    `INSERT INTO department (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
    [name],
  );
  return dept!.id;
}

/** Inserts a topic unless one of that name exists (seeding). */
export async function insertTopicIfAbsent(db: Db, t: { name: string; label: string; departmentId: number; phrases: readonly string[] }): Promise<void> {
  await exec(
    db,
    `INSERT INTO topic (name, label, department_id, phrases) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`,
    [t.name, t.label, t.departmentId, t.phrases],
  );
}

/** Creates or replaces a topic. */
export async function upsertTopic(db: Db, t: { name: string; label: string; departmentId: number; phrases: readonly string[] }): Promise<void> {
  await exec(
    db,
    `INSERT INTO topic (name, label, department_id, phrases) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET label = EXCLUDED.label, department_id = EXCLUDED.department_id,
           phrases = EXCLUDED.phrases, updated_at = now()`,
    [t.name, t.label, t.departmentId, t.phrases],
  );
}

/** Deletes a topic (its tags go with it); how many rows went. */
export async function deleteTopic(db: Db, name: string): Promise<number> {
  return (await modify(db, 'DELETE FROM topic WHERE name = $1', [name])).count;
}

/** Every topic with its department, by id. */
export function topicsWithDepartments(db: Db): Promise<TopicRow[]> {
  return rows(
    db,
    `SELECT t.id, t.name, t.label, t.phrases, d.name AS department, d.id AS department_id
           FROM topic t JOIN department d ON d.id = t.department_id ORDER BY t.id`,
  );
}
