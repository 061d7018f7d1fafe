import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

describe('GraphQL over HTTP audit (graphql-http serverAudits)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_CORS_ORIGINS: 'http://localhost:3000' }, 'audit');
  });
  afterAll(async () => app?.close());

  it('has no audit in error', async () => {
    const results = await Promise.all(serverAudits({ url: `${app.url}/graphql`, fetchFn: fetch }).map(async (a) => ({ id: a.id, name: a.name, ...(await a.fn()) })));
    const errors = results.filter((r) => r.status === 'error').map((r) => `${r.id} ${r.name}: ${r.reason}`);
    expect(errors).toEqual([]);
    expect(results.length).toBeGreaterThan(20);
  });
});
