import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `interaction.explanation` is stored as `json` (the text the service sends, compact:
 * `[{"token":"new","weight":0.066},…]`) instead of `jsonb`: it was about 610 of a 949-byte row
 * in `bench:ingest` (jsonb keeps each object's keys and every weight as a numeric with its own
 * headers), and no query looks inside it but the outbox view, which takes at most its first 20
 * items. Rewrites the table once; the `outbox` view, the only one reading the column, is
 * recreated with the json functions in place of the jsonb ones.
 */
export class ExplanationAsJson1766900000001 implements MigrationInterface {
  name = 'ExplanationAsJson1766900000001';

  async up(q: QueryRunner): Promise<void> {
    await retype(q, 'json', 'explanation::json', [
      ['jsonb_array_length(i.explanation)', 'json_array_length(i.explanation)'],
      ['jsonb_array_elements(i.explanation)', 'json_array_elements(i.explanation)'],
    ]);
  }

  /**
   * jsonb cannot hold a NUL character, which json keeps as the escape `\u0000`: a token of a model
   * server's explanation may have one, and the plain cast failed the revert with "unsupported Unicode
   * escape sequence". Such a character becomes U+FFFD (the replacement character); an escaped
   * backslash followed by `u0000` is left alone.
   */
  async down(q: QueryRunner): Promise<void> {
    await retype(q, 'jsonb', "regexp_replace(explanation::text, '(?<!\\\\)((?:\\\\\\\\)*)\\\\u0000', '\\1\\\\ufffd', 'g')::jsonb", [
      ['json_array_length(i.explanation)', 'jsonb_array_length(i.explanation)'],
      ['json_array_elements(i.explanation)', 'jsonb_array_elements(i.explanation)'],
      // the stored definition drops the cast that json needed no more
      ['THEN i.explanation', 'THEN (i.explanation)::json'],
    ]);
  }
}

/** Drops the outbox view, changes the column's type (`using`: the new value), and creates the view again with `swaps` applied to its definition. */
async function retype(q: QueryRunner, type: 'json' | 'jsonb', using: string, swaps: [string, string][]): Promise<void> {
  const [{ def }] = (await q.query(`SELECT pg_get_viewdef('outbox'::regclass) AS def`)) as { def: string }[];
  let next = def;
  for (const [from, to] of swaps) {
    if (!next.includes(from)) throw new Error(`outbox view: expected ${from} in its definition`);
    next = next.split(from).join(to);
  }
  await q.query(`DROP VIEW outbox`);
  await q.query(`
    ALTER TABLE interaction ALTER COLUMN explanation DROP DEFAULT;
    ALTER TABLE interaction ALTER COLUMN explanation TYPE ${type} USING ${using};
    ALTER TABLE interaction ALTER COLUMN explanation SET DEFAULT '[]';
  `);
  await q.query(`CREATE VIEW outbox AS ${next}`);
}
