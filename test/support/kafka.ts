import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

const START_SCRIPT = path.join('docker', 'kafka.sh');

// Tests run from source (vitest), from dist/ (compiled) or from another working directory;
// the script's location is the one thing all of them can find by walking up.
function repoRoot(): string {
  const starts = [process.cwd(), __dirname];
  for (const start of starts) {
    let dir = path.resolve(start);
    for (;;) {
      if (fs.existsSync(path.join(dir, START_SCRIPT))) return dir;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  throw new Error(`cannot find ${START_SCRIPT} above ${starts.join(' or ')}`);
}

/**
 * Returns the bootstrap brokers for tests, as a comma-separated `host:port` list.
 *
 * What must stay true: an explicit `KAFKA_BROKERS` always wins and nothing is started then
 * (CI or a developer may point tests at any cluster); otherwise the project's single-node
 * broker is started by `docker/kafka.sh start` if it is not already running, and the promise
 * resolves only once a kafkajs admin client sees a registered broker. Safe to call from many
 * test files at once: the script serialises concurrent starts with a lock.
 */
export async function ensureKafka(): Promise<string> {
  const configured = process.env.KAFKA_BROKERS?.trim();
  if (configured) return configured;

  const port = process.env.KAFKA_PORT?.trim() || '9092';
  // Synchronous on purpose: nothing else in a test file can proceed without the broker, and
  // the script's progress lines go straight to the runner's stderr for whoever reads the log.
  const result = spawnSync('bash', [START_SCRIPT, 'start'], {
    cwd: repoRoot(),
    stdio: ['ignore', 'inherit', 'inherit'],
    env: process.env,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`bash ${START_SCRIPT} start exited with ${result.status ?? result.signal}; see its output above`);
  }
  const brokers = `127.0.0.1:${port}`;
  await waitForKafka(brokers, 30_000);
  return brokers;
}

/**
 * Resolves once the cluster at `brokers` answers a metadata request listing at least one
 * broker, and rejects after `timeoutMs` with the last error seen.
 *
 * What must stay true: it never resolves on a merely open port (a KRaft broker accepts
 * connections before it is registered and unfenced), and it leaves no client connected.
 */
export async function waitForKafka(brokers: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const kafka = new Kafka({
    clientId: 'earshot-test-readiness',
    brokers: brokers.split(',').map((b) => b.trim()),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    // The loop below is the retry policy; kafkajs' own retries would overrun the deadline.
    retry: { retries: 0 },
  });
  let lastError: unknown;
  for (;;) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0) return;
      lastError = new Error('the cluster lists no brokers yet');
    } catch (error) {
      lastError = error;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, left)));
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`Kafka at ${brokers} was not ready within ${timeoutMs} ms: ${reason}`);
}
