/**
 * The V8 flags the service runs with: `npm start`, the container image and the benchmarks and
 * tests that start the compiled service pass them on node's command line (V8 reads them when the
 * heap is set up; `v8.setFlagsFromString` at run time had no effect on them, measured).
 * src/service-flags.spec.ts keeps package.json's start script and docker/Dockerfile in step.
 *
 * `--no-memory-reducer`: V8's memory reducer shrinks the heap after a few seconds of low
 * allocation, so every short lull between bursts made the next burst regrow it (seven full
 * collections in its first three seconds) with more CPU per request. The service gives memory
 * back itself after 30 s of quiet (src/shared/idle-gc.ts). Measured on the customer page
 * (10-second bursts, 10-second pauses, 50 connections): p99 408–609 ms and 3.3–4.1 ms of CPU
 * per request with the reducer, 218–272 ms and 2.5–2.7 ms without.
 *
 * `--disable-warning=TimeoutNegativeWarning`: kafkajs 2.2.4 schedules its request queue's check
 * with `throttledUntil - Date.now()`, and `throttledUntil` is -1 while not throttled: a negative
 * delay that Node 24 warns about on every start ("-1796132488940 is a negative number") and runs
 * after 1 ms, which does no harm (tulios/kafkajs#1751; the fix is not released).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--no-memory-reducer', '--disable-warning=TimeoutNegativeWarning'];
