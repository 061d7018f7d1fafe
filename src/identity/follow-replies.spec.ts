import 'reflect-metadata';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../interactions/interaction-message';
import { followReplies, type AuthoredMessage } from './author-resolution';

const key = (externalId: string) => `x\u0000${externalId}`;

function msg(externalId: string, direction: 'inbound' | 'outbound', inReplyTo: string | null, customerId: string | null): AuthoredMessage {
  const message: InteractionMessage = {
    source: 'x',
    externalId,
    occurredAt: '2026-11-01T00:00:00.000Z',
    direction,
    author: { handle: direction === 'inbound' ? `a${externalId}` : 'brand' },
    text: 'hi',
    ...(inReplyTo ? { inReplyTo } : {}),
  };
  return { id: externalId, message, claims: [], customerId };
}

/** Runs followReplies on a batch as attachReplies does; returns each message's customer by external id. */
function run(batch: AuthoredMessage[], stored: Map<string, string | null> = new Map()): Record<string, string | null> {
  const replies = batch.filter((p) => p.message.direction === 'outbound' && p.message.inReplyTo);
  followReplies(replies, new Map(batch.map((p) => [key(p.message.externalId), p])), stored);
  return Object.fromEntries(batch.map((p) => [p.message.externalId, p.customerId]));
}

describe('followReplies', () => {
  it('gives every reply of a chain longer than the call stack the complaint’s customer, in either order', () => {
    // 20,000 lines: a complaint, then each reply answering the one before (a Kafka chunk may hold
    // 10,000; the recursive walk this replaced overflowed the stack at 10,000 in reverse order)
    const chain = (): AuthoredMessage[] => [msg('c0', 'inbound', null, 'ana'), ...Array.from({ length: 19_999 }, (_, i) => msg(`c${i + 1}`, 'outbound', `c${i}`, null))];
    for (const batch of [chain(), chain().reverse()]) {
      const owners = run(batch);
      expect(Object.values(owners).every((c) => c === 'ana')).toBe(true);
    }
  });

  it('takes the owner of an answered message stored before the batch, and none for one not found', () => {
    const owners = run(
      [msg('r2', 'outbound', 'r1', null), msg('r1', 'outbound', 'old', null), msg('s1', 'outbound', 'gone', null)],
      new Map([
        [key('old'), 'bea'],
        [key('gone'), null],
      ]),
    );
    expect(owners).toEqual({ r2: 'bea', r1: 'bea', s1: null });
  });

  it('stops a cycle where it closes: replies that answer each other are nobody’s', () => {
    expect(run([msg('a', 'outbound', 'b', null), msg('b', 'outbound', 'a', null), msg('self', 'outbound', 'self', null), msg('tail', 'outbound', 'a', null)])).toEqual({
      a: null,
      b: null,
      self: null,
      tail: null,
    });
  });

  it('gives each reply the customer at the root of its chain, whatever the line order (generated forests)', () => {
    const forest = fc
      .array(fc.record({ reply: fc.boolean(), parent: fc.nat(), outside: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 60 })
      .chain((nodes) => fc.tuple(fc.constant(nodes), fc.shuffledSubarray(nodes.map((_, i) => i), { minLength: nodes.length, maxLength: nodes.length })));
    fc.assert(
      fc.property(forest, ([nodes, order]) => {
        // node i: an inbound complaint of customer `c<i>`, or a reply to an earlier node, or (when
        // it is the first) to a stored message `old<k>` owned by `o<k>` (old0 is not found)
        const answered = (i: number) => (i === 0 || nodes[i]!.outside === 0 ? `old${nodes[i]!.outside}` : `m${nodes[i]!.parent % i}`);
        const expected = (i: number): string | null => {
          for (let at = i; ; ) {
            if (!nodes[at]!.reply) return `c${at}`;
            const to = answered(at);
            if (to.startsWith('old')) return to === 'old0' ? null : `o${to.slice(3)}`;
            at = Number(to.slice(1));
          }
        };
        const batch = order.map((i) => (nodes[i]!.reply ? msg(`m${i}`, 'outbound', answered(i), null) : msg(`m${i}`, 'inbound', null, `c${i}`)));
        const stored = new Map([1, 2, 3].map((k) => [key(`old${k}`), `o${k}`] as const));
        const owners = run(batch, stored);
        nodes.forEach((_, i) => expect(owners[`m${i}`]).toBe(expected(i)));
      }),
      { numRuns: 300 },
    );
  });
});
