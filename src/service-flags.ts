/**
 * The V8 flags the service runs with: `npm start`, the container image and the benchmarks and
 * tests that start the compiled service pass them on node's command line (V8 reads them when the
 * heap is set up; `v8.setFlagsFromString` at run time had no effect on them, measured).
 * `docker/serve.sh` starts it with them (`npm start` and the container image run it);
 * src/service-flags.spec.ts keeps the script in step with `serviceNodeFlags`.
 *
 * `--no-memory-reducer`: V8's memory reducer shrinks the heap after a few seconds of low
 * allocation, so every short lull between bursts made the next burst regrow it (seven full
 * collections in its first three seconds) with more CPU per request. The service gives memory
 * back itself after 30 s of quiet (src/shared/idle-gc.ts). Measured on the customer page
 * (10-second bursts, 10-second pauses, 50 connections): p99 408–609 ms and 3.3–4.1 ms of CPU
 * per request with the reducer, 218–272 ms and 2.5–2.7 ms without.
 *
 * (`--disable-warning=TimeoutNegativeWarning` was here too: it hid the warning of a kafkajs timer
 * that re-armed itself every millisecond on every connection. patches/kafkajs+2.2.4.patch fixes
 * the cause, so a warning now means an install without the patch.)
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

/**
 * Added for a process that serves no API (EARSHOT_ROLES without `api`: an ingest or sync
 * replica). `--single-threaded-gc`: V8 collects on the main thread alone, without its helper
 * threads for parallel scavenges and concurrent marking. On two cores shared with PostgreSQL and
 * the Kafka broker the helpers compete for the same cores, and the ingest role spent less CPU
 * without them: bench:ingest with the role as a child process, eight pairs in turns (five with
 * the flag second, three with it first), node 161–214 µs an interaction against 184–270, faster
 * in seven pairs (3,000–4,637/s against 2,659–4,363/s). The API role is the other way round
 * (bench:graphql, customer page at 50 connections, two pairs: CPU per request 2.68 / 2.36 →
 * 2.98 / 2.89 ms, p99 322 / 266 → 419 / 494 ms), probably because its answers survive scavenges
 * in bulk, which the helpers share out. A sync-only process gets it too (not measured). Set at run
 * time (`v8.setFlagsFromString`) the flag does nothing (its implications are applied only at
 * start), hence the command line.
 */
export const NO_API_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/** The flags of a service process whose EARSHOT_ROLES is `roles` (unset or blank: every role). */
export function serviceNodeFlags(roles: string | undefined): string[] {
  const list = (roles ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  const api = list.length === 0 || list.includes('api');
  return api ? [...SERVICE_NODE_FLAGS] : [...SERVICE_NODE_FLAGS, ...NO_API_NODE_FLAGS];
}
