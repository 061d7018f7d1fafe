/**
 * The fastest of `runs` runs of `f`, in ms (a thrown error ends the run: what is timed is then the
 * refusal). For cost specs that compare a hostile input with an ordinary one of the same size,
 * never with a number of milliseconds.
 */
export function fastest(f: () => unknown, runs = 3): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    try {
      f();
    } catch {
      // refused
    }
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/**
 * CPU time of this process while `f` runs, in ms, and what `f` returned. For cost specs with a
 * bound in ms: a loaded machine stretches the wall clock by the load (7 s for a 1.5 s call under a
 * load average of 10 on two cores), not the CPU a call takes.
 */
export function cpuMs<T>(f: () => T): { ms: number; value: T } {
  const c0 = process.cpuUsage();
  const value = f();
  const c = process.cpuUsage(c0);
  return { ms: (c.user + c.system) / 1000, value };
}
