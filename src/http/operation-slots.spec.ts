import { describe, expect, it } from 'vitest';
import { OperationSlots } from './operation-slots';

/** every promise callback already due has run */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('OperationSlots', () => {
  it('runs at most `concurrency` at once, queues up to `queueMax` in order, refuses beyond', async () => {
    const slots = new OperationSlots(2, 1);
    expect(await slots.enter('a')).toBe(true);
    expect(await slots.enter('b')).toBe(true);
    const order: string[] = [];
    const third = slots.enter('c').then((ok) => order.push(`third:${ok}`));
    expect(slots.waiting()).toBe(1);
    // the line is full: refused at once, holding nothing
    expect(await slots.enter('d')).toBe(false);
    expect(order).toEqual([]);
    slots.leave('a');
    await third;
    expect(order).toEqual(['third:true']);
    expect(slots.waiting()).toBe(0);
  });

  it('with no line at all, still admits while a slot is free', async () => {
    const slots = new OperationSlots(1, 0);
    expect(await slots.enter('a')).toBe(true);
    expect(await slots.enter('b')).toBe(false);
    slots.leave('a');
    expect(await slots.enter('b')).toBe(true);
  });

  it('never lets one caller hold every slot: another caller starts at once', async () => {
    const slots = new OperationSlots(4, 100);
    for (let i = 0; i < 3; i++) expect(await slots.enter('noisy')).toBe(true);
    // the noisy caller's fourth waits although a slot is free ...
    let fourth = false;
    void slots.enter('noisy').then(() => (fourth = true));
    await settled();
    expect(fourth).toBe(false);
    expect(slots.waiting()).toBe(1);
    // ... which another caller takes at once
    expect(await slots.enter('quiet')).toBe(true);
    // the noisy one runs when one of its own ends
    slots.leave('noisy');
    await settled();
    expect(fourth).toBe(true);
  });

  it('one slot: still shared, one caller at a time', async () => {
    const slots = new OperationSlots(1, 10);
    expect(await slots.enter('a')).toBe(true);
    const next = slots.enter('a');
    slots.leave('a');
    expect(await next).toBe(true);
  });

  it('gives freed slots to the waiting callers in turn, each in its own order', async () => {
    const slots = new OperationSlots(2, 1000);
    expect(await slots.enter('noisy')).toBe(true);
    expect(await slots.enter('other')).toBe(true);
    const started: string[] = [];
    const waits: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) waits.push(slots.enter('noisy').then(() => started.push(`noisy${i}`)));
    waits.push(slots.enter('quiet').then(() => started.push('quiet0')));
    waits.push(slots.enter('quiet').then(() => started.push('quiet1')));
    expect(slots.waiting()).toBe(7);
    // each operation that ends frees a slot for the next turn
    const who = ['other', 'noisy', 'quiet', 'noisy', 'quiet', 'noisy', 'noisy', 'noisy'];
    for (const caller of who) {
      slots.leave(caller);
      await settled();
    }
    await Promise.all(waits);
    // the quiet caller waited one turn each time, not behind the noisy one's five
    expect(started).toEqual(['quiet0', 'noisy0', 'quiet1', 'noisy1', 'noisy2', 'noisy3', 'noisy4']);
  });

  it('refuses a caller whose own line is full, and only that caller', async () => {
    const slots = new OperationSlots(2, 100, 3);
    expect(await slots.enter('noisy')).toBe(true);
    expect(await slots.enter('busy')).toBe(true);
    for (let i = 0; i < 3; i++) void slots.enter('noisy');
    expect(await slots.enter('noisy')).toBe(false);
    let quiet = false;
    void slots.enter('quiet').then((ok) => (quiet = ok));
    expect(slots.waiting()).toBe(4);
    slots.leave('busy');
    await settled();
    expect(quiet).toBe(true);
  });
});
