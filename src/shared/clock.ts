/** Time as background work sees it: injected so tests move time instead of sleeping. */
export interface Clock {
  now(): number;
  date(): Date;
  /** Calls `fn` once `ms` have passed on this clock; the handle cancels it. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number;
}

let nextId = 1;

/** The wall clock. */
export class SystemClock implements Clock {
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return Date.now();
  }

  date(): Date {
    return new Date();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    this.timers.set(id, t);
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t) clearTimeout(t);
    this.timers.delete(handle.id);
  }
}

export const systemClock: Clock = new SystemClock();

/**
 * A clock tests move forward: real time plus an offset that `advance` grows. It never runs behind
 * the database's `now()` (rows the database stamps are never "in the future" to it), timers fire on
 * real time as well as when `advance` passes their due time, and time never goes backwards.
 */
export class ManualClock implements Clock {
  private offset = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void; real: NodeJS.Timeout }>();

  now(): number {
    return Date.now() + this.offset;
  }

  date(): Date {
    return new Date(this.now());
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    const due = this.now() + Math.max(0, ms);
    const real = setTimeout(() => this.fire(id), Math.max(0, ms));
    this.timers.set(id, { due, fn, real });
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t) clearTimeout(t.real);
    this.timers.delete(handle.id);
  }

  /** Moves time forward by `ms` and fires every timer now due, earliest first. */
  advance(ms: number): void {
    this.offset += ms;
    const now = this.now();
    const due = [...this.timers.entries()].filter(([, t]) => t.due <= now).sort((a, b) => a[1].due - b[1].due);
    for (const [id] of due) this.fire(id);
  }

  private fire(id: number): void {
    const t = this.timers.get(id);
    if (!t) return;
    clearTimeout(t.real);
    this.timers.delete(id);
    t.fn();
  }
}
