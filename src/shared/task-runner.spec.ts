import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ManualClock } from './clock';
import { requestContext } from './request-context';
import { TaskRunner } from './task-runner';

const log = pino({ level: 'silent' });

describe('TaskRunner', () => {
  it('runs at start and then every interval of the injected clock', async () => {
    const clock = new ManualClock();
    let n = 0;
    const t = new TaskRunner({ name: 't', intervalMs: 60_000, clock, log, run: async () => void n++ });
    t.start();
    await t.waitForRuns(1);
    expect(n).toBe(1);
    clock.advance(59_000);
    expect(t.running).toBe(false);
    expect(t.runsDone).toBe(1);
    clock.advance(1_000);
    await t.waitForRuns(2);
    clock.advance(60_000);
    await t.waitForRuns(3);
    expect(n).toBe(3);
    await t.stop();
    clock.advance(600_000);
    expect(t.runsDone).toBe(3);
  });

  it('logs and counts errors and keeps the schedule', async () => {
    const clock = new ManualClock();
    let n = 0;
    const t = new TaskRunner({ name: 't', intervalMs: 10, clock, log, run: async () => {
      if (++n === 1) throw new Error('boom');
    } });
    t.start();
    await t.waitForRuns(1);
    expect(t.errors).toBe(1);
    expect(t.lastError).toBe('boom');
    clock.advance(10);
    await t.waitForRuns(2);
    expect(t.errors).toBe(1);
    await t.stop();
  });

  it('joins a run in flight on runNow, queues one more on trigger, and stop waits for the run', async () => {
    let release!: () => void;
    let n = 0;
    const t = new TaskRunner({ name: 't', intervalMs: null, log, run: () => new Promise<number>((r) => { n++; release = () => r(n); }) });
    const a = t.runNow();
    const b = t.runNow();
    expect(a).toBe(b);
    t.trigger();
    t.trigger();
    release();
    expect(await a).toBe(1);
    await t.waitForRuns(1);
    await new Promise((r) => setImmediate(r));
    expect(t.running).toBe(true);
    const stopped = t.stop();
    release();
    await stopped;
    expect(n).toBe(2);
    expect(t.runsDone).toBe(2);
  });

  it('drains while `again` holds', async () => {
    const queue = [3, 2, 1, 0];
    const t = new TaskRunner({ name: 't', intervalMs: null, log, run: async () => queue.shift()!, again: (r) => r > 0 });
    expect(await t.runNow()).toBe(0);
    expect(queue).toEqual([]);
  });

  it('runs a task asked for by a request outside that request (its logs, its event-loop turns)', async () => {
    const seen: unknown[] = [];
    const t = new TaskRunner({ name: 't', intervalMs: null, log, run: async () => void seen.push(requestContext.getStore()) });
    await requestContext.run({ requestId: 'req-1', loopTurns: true }, async () => {
      await t.runNow();
      t.trigger();
    });
    await t.waitForRuns(2);
    expect(seen).toEqual([undefined, undefined]);
  });
});
