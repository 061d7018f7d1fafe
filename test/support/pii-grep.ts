import type { Received } from './kafka-fixtures';

type Query = <T = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

/**
 * Every `table.column: value (rows)` where one of `values` still appears (case-insensitive,
 * anywhere in the value), over every text, varchar, json, jsonb, array and enum column of every
 * table of the current schema but the migrations list. What an erasure test greps for the
 * seeded values of the erased person; `columns` says how many columns were searched.
 */
export async function grepDatabase(q: Query, values: string[]): Promise<{ hits: string[]; columns: number }> {
  const cols = await q<{ table_name: string; column_name: string }>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND (c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'USER-DEFINED') OR c.udt_name IN ('text', 'varchar'))
        AND c.table_name <> 'migrations'`,
  );
  const hits: string[] = [];
  for (const { table_name: t, column_name: c } of cols) {
    for (const v of values) {
      const [{ n }] = (await q<{ n: number }>(`SELECT count(*)::int AS n FROM "${t}" WHERE "${c}"::text ILIKE '%' || $1 || '%'`, [v])) as [{ n: number }];
      if (n > 0) hits.push(`${t}.${c}: ${v} (${n})`);
    }
  }
  return { hits, columns: cols.length };
}

/** The `values` a Kafka message (key or value) mentions, case-insensitive. */
export function mentions(r: Received, values: string[]): string[] {
  const text = `${r.key ?? ''} ${r.value?.toString('utf8') ?? ''}`.toLowerCase();
  return values.filter((v) => text.includes(v.toLowerCase()));
}

/** The `values` a CRM record (any JSON) mentions, case-insensitive. */
export function recordMentions(record: unknown, values: string[]): string[] {
  const text = JSON.stringify(record).toLowerCase();
  return values.filter((v) => text.includes(v.toLowerCase()));
}
