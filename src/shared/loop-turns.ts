/**
 * Lets continuations run one per turn of the event loop, in the order they asked.
 *
 * Why: libuv accepts one new connection per turn of the event loop (measured with strace on
 * Node 24: one `accept4` per readiness of the listening socket). A GraphQL request's heavy part —
 * executing the selection over the rows and serializing the answer, 2–4 ms — runs as the
 * continuation of its SQL result, in the callback that read the result; when ten results are
 * read in one turn, that turn takes 30 ms or more, and at 50 connections opened at once the last
 * waited about two seconds to be accepted (most of bench:graphql's p99 at 50 connections). Taking a turn
 * after the result moves each continuation into the loop's check phase (setImmediate), one per
 * turn, so a turn is about one operation long and new connections are accepted promptly.
 *
 * What must stay true: every `take()` resolves, in FIFO order, at most one per check phase;
 * nothing is held between turns (a waiter that is never resumed cannot block the others).
 */
export class LoopTurns {
  private readonly waiting: (() => void)[] = [];
  private head = 0;
  private scheduled = false;

  /** Resolves in a later check phase of the event loop, after every earlier `take()`. */
  take(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.next);
      }
    });
  }

  /** continuations waiting for their turn */
  pending(): number {
    return this.waiting.length - this.head;
  }

  private readonly next = (): void => {
    const resolve = this.waiting[this.head];
    this.waiting[this.head++] = undefined as never;
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    // an immediate queued from a running immediate runs in the next turn of the loop
    if (this.pending() > 0) setImmediate(this.next);
    else this.scheduled = false;
    resolve?.();
  };
}

/** The process's one line of turns: two lines would each run one continuation per turn. */
export const loopTurns = new LoopTurns();
