/**
 * npm run bench:limits — what the cost limits buy: the 1,000-alias analyzeText bomb with a 1 MB
 * variable (time to refusal), and /healthz latency while heavy-but-allowed analyzeText requests
 * run, each with the limits on (defaults) and off (the limits raised out of the way, analysis on
 * the event loop: how Earshot behaved before). Last line: JSON.
 */
import { startApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { createTestDatabase, findTestPostgres, TEST_PG_ENV } from '../support/postgres';

const KEY = 'bench-limits-key-0123456789';
const OFF = {
  EARSHOT_GRAPHQL_MAX_TOKENS: '1000000',
  EARSHOT_GRAPHQL_MAX_ALIASES: '10000',
  EARSHOT_GRAPHQL_MAX_COMPLEXITY: '100000000',
  EARSHOT_ANALYZE_MAX_TEXT_BYTES: '67108864',
  EARSHOT_ANALYZE_WORKERS: '0',
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(env: Record<string, string>, bombAliases: number, rounds: number) {
  const database = await createTestDatabase('benchlimits');
  const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'error', DATABASE_URL: database.url, EARSHOT_ROLES: 'api', EARSHOT_API_KEYS: `${KEY}:analyst`, ...env });
  const app = await startApp(config, createLogger('error'));
  const graphqlSeconds = async () => {
    const m = await app.metrics.httpDuration.get();
    const pick = (name: string) => m.values.filter((v) => v.metricName === name && v.labels.route === 'graphql').reduce((a, v) => a + v.value, 0);
    return { sum: pick('earshot_http_request_duration_seconds_sum'), count: pick('earshot_http_request_duration_seconds_count') };
  };
  const post = async (query: string, variables: Record<string, unknown>) => {
    // the body is built before the clock starts: what is timed is the server's answer
    const body = Buffer.from(JSON.stringify({ query, variables }));
    const t0 = performance.now();
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body });
    const answer = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
    return { ms: performance.now() - t0, code: answer.errors?.[0]?.extensions?.code ?? 'ok' };
  };
  try {
    const mb = 'terrible '.repeat(116_509);
    const bomb = `query Bomb($t: String!) { ${Array.from({ length: bombAliases }, (_, i) => `a${i}: analyzeText(text: $t) { score }`).join(' ')} }`;
    await post('{ topics { name } }', {}); // warm-up: the first operation builds Apollo's caches
    const bombMs: number[] = [];
    let code = '';
    const serverBefore = await graphqlSeconds();
    for (let i = 0; i < rounds; i++) {
      const r = await post(bomb, { t: mb });
      bombMs.push(r.ms);
      code = r.code;
    }
    const serverAfter = await graphqlSeconds();
    // what the server spent, from the first byte of the request to the last of the answer (its own histogram)
    const bombServerMeanMs = ((serverAfter.sum - serverBefore.sum) / (serverAfter.count - serverBefore.count)) * 1000;
    // /healthz while 8 requests with 256 kB of text each are in flight
    const big = 'nothing works and nobody answers, worst experience ever. '.repeat(4500);
    let done = 0;
    const heavy = Array.from({ length: 8 }, () => post('query($t: String!) { analyzeText(text: $t) { score } }', { t: big }).then(() => done++));
    const health: number[] = [];
    while (done < heavy.length) {
      const t0 = performance.now();
      await fetch(`${app.url}/healthz`);
      health.push(performance.now() - t0);
    }
    await Promise.all(heavy);
    return { bombMedianMs: median(bombMs), bombServerMeanMs, bombCode: code, healthzMaxMs: Math.max(...health), healthzMedianMs: median(health), healthzSamples: health.length };
  } finally {
    await app.stop();
    await database.drop();
  }
}

async function main() {
  const admin = await findTestPostgres();
  if (!admin) throw new Error('no PostgreSQL for the benchmark: set TEST_DATABASE_URL or run one on 127.0.0.1:5432');
  process.env[TEST_PG_ENV] = admin;
  const on = await measure({}, 1000, 20);
  // 1,000 aliases without limits froze the server for ~27 s: 20 show the same at a bearable cost
  const off = await measure(OFF, 20, 3);
  console.log(`limits on : 1,000-alias bomb + 1 MB variable refused (${on.bombCode}) in ${on.bombMedianMs.toFixed(1)} ms (median of 20 round trips; server ${on.bombServerMeanMs.toFixed(1)} ms mean)`);
  console.log(`limits off: 20-alias bomb + 1 MB variable answered (${off.bombCode}) in ${off.bombMedianMs.toFixed(1)} ms (median of 3; server ${off.bombServerMeanMs.toFixed(1)} ms mean)`);
  console.log(`/healthz during 8 × 256 kB analyzeText: on max ${on.healthzMaxMs.toFixed(1)} ms (median ${on.healthzMedianMs.toFixed(1)}, ${on.healthzSamples} samples); off max ${off.healthzMaxMs.toFixed(1)} ms (median ${off.healthzMedianMs.toFixed(1)}, ${off.healthzSamples} samples)`);
  console.log(JSON.stringify({ bench: 'graphql-limits', on, off }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
