import { describe, expect, it } from 'vitest';
import { LoopTurns } from './loop-turns';

describe('LoopTurns', () => {
  it('resumes its callers in the order they asked, one per turn of the event loop', async () => {
    // counts turns: an immediate that queues itself again runs once per check phase
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const turns = new LoopTurns();
    const seen: { caller: number; turn: number }[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, caller) => turns.take().then(() => seen.push({ caller, turn }))));
    ticking = false;
    expect(seen.map((s) => s.caller)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // each in a turn of its own
    expect(new Set(seen.map((s) => s.turn)).size).toBe(20);
    expect(turns.pending()).toBe(0);
  });

  it('takes turns again after its line ran empty, and stays small after thousands', async () => {
    const turns = new LoopTurns();
    await turns.take();
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 1500 }, () => turns.take()));
    expect(turns.pending()).toBe(0);
  });
});
