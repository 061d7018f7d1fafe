import { Sema } from 'async-sema';

/**
 * At most `concurrency` operations run at once; up to `queueMax` more wait in line, in order.
 *
 * What must stay true: `enter` resolves true only with a slot held (give it back with `leave`,
 * exactly once); it resolves false at once, holding nothing, when every slot is taken and the
 * line is full, so the caller can answer 503 instead of queueing without bound.
 */
export class OperationSlots {
  private readonly sema: Sema;

  constructor(
    concurrency: number,
    private readonly queueMax: number,
  ) {
    this.sema = new Sema(concurrency);
  }

  async enter(): Promise<boolean> {
    if (this.sema.tryAcquire() !== undefined) return true;
    if (this.sema.nrWaiting() >= this.queueMax) return false;
    await this.sema.acquire();
    return true;
  }

  leave(): void {
    this.sema.release();
  }

  /** operations waiting for a slot */
  waiting(): number {
    return this.sema.nrWaiting();
  }
}
