import { readFileSync } from 'node:fs';

/**
 * A port for a server a test or benchmark starts (an embedded PostgreSQL, an HTTP server on a
 * fixed port): random, and below the kernel's range of ephemeral ports. A random port inside that
 * range (32768–60999 on Linux) can be the local port of any outgoing connection of the tests
 * running beside it — a PostgreSQL client, a Kafka client — and the server then fails to bind
 * ("Address already in use"), as one CI run's embedded PostgreSQL did on 57422.
 */
export function servicePort(): number {
  let lowest = 32_768;
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && Number.isInteger(low) && low > 12_000) lowest = low;
  } catch {
    // not Linux: the IANA dynamic range starts at 49152, so 32768 stays below it too
  }
  return lowest - 12_000 + Math.floor(Math.random() * 10_000);
}
