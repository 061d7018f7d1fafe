/**
 * At most `concurrency` GraphQL operations run at once, shared fairly between the callers
 * (API keys, JWT subjects) that ask for them.
 *
 * - One caller never holds every slot: it may hold `concurrency - 1` at most (all of them when
 *   `concurrency` is 1), so another caller's operation starts at once, whatever the first one
 *   keeps running.
 * - When a slot frees, the callers waiting take turns (round robin), each in its own order: a
 *   caller with a thousand operations in line delays another's next one by one turn, not by a
 *   thousand operations.
 * - Up to `queueMax` operations wait in all, and up to `perCallerQueueMax` of one caller.
 *
 * What must stay true: `enter` resolves true only with a slot held (give it back with `leave`,
 * with the same caller, exactly once); it resolves false at once, holding nothing, when the
 * caller may not run now and the line (all, or the caller's own) is full, so the caller can
 * answer 503 instead of queueing without bound.
 */
export class OperationSlots {
  private running = 0;
  /** slots each caller holds now */
  private readonly held = new Map<string, number>();
  /** each caller's waiting operations, in order; the Map's order is the order of turns */
  private readonly lines = new Map<string, Array<(ok: boolean) => void>>();
  private waitingCount = 0;
  private readonly perCallerMax: number;

  constructor(
    private readonly concurrency: number,
    private readonly queueMax: number,
    private readonly perCallerQueueMax: number = queueMax,
  ) {
    this.perCallerMax = concurrency > 1 ? concurrency - 1 : 1;
  }

  async enter(caller = ''): Promise<boolean> {
    if (this.mayRun(caller)) {
      this.start(caller);
      return true;
    }
    const line = this.lines.get(caller);
    if (this.waitingCount >= this.queueMax || (line?.length ?? 0) >= this.perCallerQueueMax) return false;
    return new Promise<boolean>((resolve) => {
      if (line) line.push(resolve);
      else this.lines.set(caller, [resolve]);
      this.waitingCount++;
    });
  }

  leave(caller = ''): void {
    const n = (this.held.get(caller) ?? 0) - 1;
    if (n > 0) this.held.set(caller, n);
    else this.held.delete(caller);
    this.running--;
    this.dispatch();
  }

  /** operations waiting for a slot */
  waiting(): number {
    return this.waitingCount;
  }

  private mayRun(caller: string): boolean {
    return this.running < this.concurrency && (this.held.get(caller) ?? 0) < this.perCallerMax;
  }

  private start(caller: string): void {
    this.running++;
    this.held.set(caller, (this.held.get(caller) ?? 0) + 1);
  }

  /** Gives free slots to the waiting callers that may run, one operation per turn. */
  private dispatch(): void {
    while (this.running < this.concurrency && this.waitingCount > 0) {
      let next: string | undefined;
      for (const caller of this.lines.keys()) {
        if (this.mayRun(caller)) {
          next = caller;
          break;
        }
      }
      if (next === undefined) return;
      const line = this.lines.get(next)!;
      const resolve = line.shift()!;
      // to the back of the turns, or out of them when its line is empty
      this.lines.delete(next);
      if (line.length > 0) this.lines.set(next, line);
      this.waitingCount--;
      this.start(next);
      resolve(true);
    }
  }
}
