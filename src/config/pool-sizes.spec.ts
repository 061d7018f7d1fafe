import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

describe('DATABASE_INGEST_POOL_SIZE', () => {
  it('is a Kafka partition each and one large request\'s lanes unless set: 3 + 3', () => {
    expect(loadConfig({}).databaseIngestPoolSize).toBe(6);
    expect(loadConfig({ KAFKA_CONSUMER_CONCURRENCY: '8', EARSHOT_INGEST_LANES: '2' }).databaseIngestPoolSize).toBe(10);
    expect(loadConfig({ DATABASE_INGEST_POOL_SIZE: '4' }).databaseIngestPoolSize).toBe(4);
  });

  it('refuses 0 and what is not digits, naming the variable once', () => {
    for (const raw of ['0', '1e1', '201']) {
      let error: unknown;
      try {
        loadConfig({ DATABASE_INGEST_POOL_SIZE: raw });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([`DATABASE_INGEST_POOL_SIZE=${JSON.stringify(raw)}: expected an integer from 1 to 200`]);
    }
    // a bad EARSHOT_INGEST_LANES is named once, though the default pool size reads it too
    expect(() => loadConfig({ EARSHOT_INGEST_LANES: 'x' })).toThrow(/^(?!.*EARSHOT_INGEST_LANES.*EARSHOT_INGEST_LANES)/s);
  });
});

describe('DATABASE_JOBS_POOL_SIZE', () => {
  it('is 10 unless set, and refuses what the other pool sizes refuse', () => {
    expect(loadConfig({}).databaseJobsPoolSize).toBe(10);
    expect(loadConfig({ DATABASE_JOBS_POOL_SIZE: '3' }).databaseJobsPoolSize).toBe(3);
    for (const raw of ['0', '-1', '201', 'ten']) {
      let error: unknown;
      try {
        loadConfig({ DATABASE_JOBS_POOL_SIZE: raw });
      } catch (e) {
        error = e;
      }
      expect((error as ConfigError).problems).toEqual([`DATABASE_JOBS_POOL_SIZE=${JSON.stringify(raw)}: expected an integer from 1 to 200`]);
    }
  });
});
