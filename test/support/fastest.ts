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
