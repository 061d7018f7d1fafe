import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { conversationKeys, ingestLanes } from './ingest-lanes';
import type { InteractionMessage } from './interaction-message';

// Small pools of names, so that generated messages often share a thread, a handle or an e-mail.
const name = fc.constantFrom('ana', 'bo', 'cy', 'dee', 'Ana', 'eve');
const messageArb: fc.Arbitrary<InteractionMessage> = fc
  .record({
    source: fc.constantFrom('x', 'reddit'),
    n: fc.integer({ min: 0, max: 40 }),
    replyTo: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
    direction: fc.constantFrom('inbound' as const, 'outbound' as const),
    handle: fc.option(name, { nil: undefined }),
    email: fc.option(name.map((n) => `${n}@example.com`), { nil: undefined }),
    phone: fc.option(fc.constantFrom('+14155550001', '+1 415 555 0002'), { nil: undefined }),
    mention: fc.option(name, { nil: undefined }),
  })
  .map(({ source, n, replyTo, direction, handle, email, phone, mention }) => ({
    source,
    externalId: `m${n}`,
    occurredAt: '2026-11-01T00:00:00.000Z',
    direction,
    ...(replyTo !== undefined ? { inReplyTo: `m${replyTo}` } : {}),
    author: direction === 'outbound' ? { handle: 'brand' } : { handle, email, phone },
    text: mention ? `@${mention} thanks` : 'hello',
  }));

/** distinct (source, externalId), as the service dedupes before it splits */
const requestArb = fc.uniqueArray(messageArb, { selector: (m) => `${m.source}/${m.externalId}`, maxLength: 120 });

describe('ingestLanes', () => {
  it('puts every message in exactly one lane, in line order, within the lane limit', () => {
    fc.assert(
      fc.property(requestArb, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 50 }), (messages, maxLanes, batch) => {
        const lanes = ingestLanes(messages, maxLanes, batch);
        expect(lanes.flat().sort((a, b) => a - b)).toEqual(messages.map((_, i) => i));
        for (const lane of lanes) {
          expect(lane.length).toBeGreaterThan(0);
          expect([...lane].sort((a, b) => a - b)).toEqual(lane);
        }
        expect(lanes.length).toBeLessThanOrEqual(Math.max(1, Math.min(maxLanes, Math.ceil(messages.length / batch))));
      }),
    );
  });

  it('keeps two messages that share a thread or a person in one lane', () => {
    fc.assert(
      fc.property(requestArb, fc.integer({ min: 2, max: 5 }), (messages, maxLanes) => {
        const lanes = ingestLanes(messages, maxLanes, 1);
        const laneOf = new Map<number, number>();
        lanes.forEach((lane, l) => lane.forEach((i) => laneOf.set(i, l)));
        const keys = messages.map((m) => new Set(conversationKeys(m)));
        for (let i = 0; i < messages.length; i++) {
          for (let j = i + 1; j < messages.length; j++) {
            if ([...keys[i]!].some((k) => keys[j]!.has(k))) expect(laneOf.get(i)).toBe(laneOf.get(j));
          }
        }
      }),
    );
  });

  it('gives the same split for the same request', () => {
    fc.assert(
      fc.property(requestArb, (messages) => {
        expect(ingestLanes(messages, 3, 5)).toEqual(ingestLanes([...messages], 3, 5));
      }),
    );
  });

  it('joins a reply to its complaint and the handle it addresses, but not all replies through the brand', () => {
    const m = (externalId: string, over: Partial<InteractionMessage>): InteractionMessage => ({ source: 'x', externalId, occurredAt: '2026-11-01T00:00:00.000Z', direction: 'inbound', author: {}, text: 'hi', ...over });
    const brand = { handle: 'brand' };
    const messages = [
      m('a1', { author: { handle: 'Ana' } }),
      m('b1', { author: { handle: 'bo' } }),
      m('r1', { direction: 'outbound', author: brand, inReplyTo: 'a1', text: 'sorry' }),
      m('r2', { direction: 'outbound', author: brand, text: '@BO we are on it' }),
      m('c1', { author: { handle: 'cy', email: 'ana@example.com' } }),
      m('a2', { author: { email: 'Ana@Example.com' } }),
    ];
    // {a1, r1}: the thread; {b1, r2}: the addressed handle, in any case; {c1, a2}: one e-mail.
    // Two lanes: the third conversation goes to the first lane (a tie goes to the lower lane).
    expect(ingestLanes(messages, 2, 1)).toEqual([
      [0, 2, 4, 5],
      [1, 3],
    ]);
  });

  it('joins authors as identity resolution does: one phone in two formats, one address with and without a tag when tags are stripped', () => {
    const m = (externalId: string, author: InteractionMessage['author']): InteractionMessage => ({ source: 'x', externalId, occurredAt: '2026-11-01T00:00:00.000Z', direction: 'inbound', author, text: 'hi' });
    const messages = [
      m('p1', { handle: 'p1', phone: '+1 (415) 555-2671' }),
      m('e1', { handle: 'e1', email: 'Ana+shop@Example.com' }),
      m('p2', { handle: 'p2', phone: '415.555.2671' }),
      m('e2', { handle: 'e2', email: 'ana@example.com' }),
    ];
    expect(ingestLanes(messages, 2, 1, { defaultRegion: 'US', email: { plusAddressing: 'strip' } })).toEqual([
      [0, 2],
      [1, 3],
    ]);
    // kept tags: two addresses, two people
    expect(ingestLanes(messages, 3, 1, { defaultRegion: 'US', email: { plusAddressing: 'keep' } })).toEqual([[0, 2], [1], [3]]);
  });

  it('keeps a body that is one conversation from end to end in one lane, in line order', () => {
    // each line answers the one before it, alternating author and brand: one thread of 3,000 lines
    const chain: InteractionMessage[] = Array.from({ length: 3_000 }, (_, i) => ({
      source: 'x',
      externalId: `c${i}`,
      ...(i > 0 ? { inReplyTo: `c${i - 1}` } : {}),
      occurredAt: '2026-11-01T00:00:00.000Z',
      direction: i % 2 === 0 ? 'inbound' : 'outbound',
      author: i % 2 === 0 ? { handle: `asker${i}` } : { handle: 'brand' },
      text: 'hi',
    }));
    expect(ingestLanes(chain, 3, 500)).toEqual([chain.map((_, i) => i)]);
    // the same lines in reverse order: each names one that comes later
    expect(ingestLanes([...chain].reverse(), 3, 500)).toEqual([chain.map((_, i) => i)]);
  });

  it('balances conversations of one message each over the lanes and keeps a small request whole', () => {
    const singles: InteractionMessage[] = Array.from({ length: 10 }, (_, i) => ({ source: 'x', externalId: `s${i}`, occurredAt: '2026-11-01T00:00:00.000Z', direction: 'inbound', author: { handle: `h${i}` }, text: 'hi' }));
    expect(ingestLanes(singles, 3, 1)).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7],
      [2, 5, 8],
    ]);
    expect(ingestLanes(singles, 3, 500)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    expect(ingestLanes([], 3, 1)).toEqual([]);
  });
});
