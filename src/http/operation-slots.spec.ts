import { describe, expect, it } from 'vitest';
import { OperationSlots } from './operation-slots';

describe('OperationSlots', () => {
  it('runs at most `concurrency` at once, queues up to `queueMax` in order, refuses beyond', async () => {
    const slots = new OperationSlots(2, 1);
    expect(await slots.enter()).toBe(true);
    expect(await slots.enter()).toBe(true);
    const order: string[] = [];
    const third = slots.enter().then((ok) => order.push(`third:${ok}`));
    expect(slots.waiting()).toBe(1);
    // the line is full: refused at once, holding nothing
    expect(await slots.enter()).toBe(false);
    expect(order).toEqual([]);
    slots.leave();
    await third;
    expect(order).toEqual(['third:true']);
    expect(slots.waiting()).toBe(0);
  });

  it('with no line at all, still admits while a slot is free', async () => {
    const slots = new OperationSlots(1, 0);
    expect(await slots.enter()).toBe(true);
    expect(await slots.enter()).toBe(false);
    slots.leave();
    expect(await slots.enter()).toBe(true);
  });
});
