import { expect } from 'vitest';
import { ndjson, type TestApp } from './app';

/** POSTs `lines` to the app's /ingest with `key`, and checks that every line was accepted. */
export async function ingestAll(app: TestApp, key: string, lines: Record<string, unknown>[]): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': key }, body: ndjson(lines) });
  const body = (await res.json()) as { accepted: number; rejected: unknown[] };
  expect(body.rejected).toEqual([]);
  expect(body.accepted).toBe(lines.length);
}

/** A GraphQL operation with `key` that must answer without errors: its data. */
export async function gqlData<T>(app: TestApp, key: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const r = await app.gql<T>(query, variables, { 'x-api-key': key });
  expect(r.errors).toBeUndefined();
  return r.data;
}
