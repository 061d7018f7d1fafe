import { expect } from 'vitest';
import type { TestApp } from './app';

/** Starts a re-resolution job through GraphQL and polls it to the end, keeping every progress report seen. */
export async function runJob(app: TestApp, args: { autoLinkBits?: number; reviewBits?: number } = {}) {
  type Job = { id: string; status: string; total: number; done: number; merges: number; suggestions: number; startedAt: string | null; finishedAt: string | null; error: string | null };
  const FIELDS = 'id status total done merges suggestions startedAt finishedAt error';
  const started = await app.gql<{ startReresolution: Job }>(`mutation J($a: Float, $r: Float) { startReresolution(autoLinkBits: $a, reviewBits: $r) { ${FIELDS} } }`, { a: args.autoLinkBits, r: args.reviewBits });
  expect(started.errors).toBeUndefined();
  const id = started.data.startReresolution.id;
  const seen: Job[] = [];
  for (let i = 0; i < 600; i++) {
    const r = await app.gql<{ reresolutionJob: Job }>(`query J($id: ID!) { reresolutionJob(id: $id) { ${FIELDS} } }`, { id });
    seen.push(r.data.reresolutionJob);
    if (['SUCCEEDED', 'FAILED'].includes(r.data.reresolutionJob.status)) return Object.assign(r.data.reresolutionJob, { seen });
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('re-resolution job did not finish in 60 s');
}
