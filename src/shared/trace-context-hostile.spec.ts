import { context, propagation, ROOT_CONTEXT, trace, type TextMapPropagator } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { afterEach, describe, expect, it } from 'vitest';
import { contextFromHeaders, traceHeaders } from './tracing';

// The W3C trace context a Kafka producer (or an outbox row) hands Earshot, as an attacker would
// write it. The W3C limits: a tracestate has at most 32 list members, and 512 characters is what
// every vendor must carry on; a traceparent of version 00 is 55 characters.

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

/** A propagator that records the carrier it is asked to read: what contextFromHeaders decodes and hands on. */
function recording(): { seen: Record<string, string>[] } & TextMapPropagator {
  const seen: Record<string, string>[] = [];
  return {
    seen,
    inject() {},
    extract(ctx, carrier) {
      seen.push({ ...(carrier as Record<string, string>) });
      return ctx;
    },
    fields: () => ['traceparent', 'tracestate'],
  };
}

afterEach(() => propagation.disable());

describe('contextFromHeaders on hostile headers', () => {
  it('decodes only traceparent and tracestate, and at most a bounded prefix of each', () => {
    const r = recording();
    propagation.setGlobalPropagator(r);
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`h${i}`, Buffer.from(`v${i}`)]));
    contextFromHeaders({
      ...many,
      traceparent: Buffer.from(`01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-${'a'.repeat(1 << 20)}`),
      tracestate: Buffer.from(`${'k=v,'.repeat(250_000)}last=1`),
      baggage: Buffer.from('email=jane.doe%40example.org'),
      other: Buffer.alloc(1 << 20, 0x61),
    });
    const carrier = r.seen[0]!;
    expect(Object.keys(carrier).sort()).toEqual(['traceparent', 'tracestate']);
    expect(carrier.traceparent!.length).toBeLessThanOrEqual(512);
    expect(carrier.tracestate!.length).toBeLessThanOrEqual(1024);
    // cut at a list member, never inside one (a cut value would be carried on as another value)
    expect(carrier.tracestate!.split(',').every((m) => m === 'k=v')).toBe(true);
  });

  it('bounds string values too (outbox rows), and reads own properties only', () => {
    const r = recording();
    propagation.setGlobalPropagator(r);
    contextFromHeaders({ traceparent: TP, tracestate: `a=${'b'.repeat(300)},c=d,${'x'.repeat(1 << 20)}` });
    expect(r.seen[0]).toEqual({ traceparent: TP, tracestate: `a=${'b'.repeat(300)},c=d` });
    const inherited = Object.create({ traceparent: TP }) as Record<string, unknown>;
    contextFromHeaders(inherited);
    expect(r.seen[1]).toEqual({});
  });

  it('with the W3C propagator: valid context still propagates, bounded to 32 members and 512 characters', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const members = Array.from({ length: 100 }, (_, i) => `v${i}=x`).join(',');
    const ctx = contextFromHeaders({ traceparent: Buffer.from(TP), tracestate: Buffer.from(`${members},${'z=1,'.repeat(200_000)}`) });
    expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', isRemote: true });
    const out = traceHeaders(ctx);
    expect(out.traceparent).toBe(TP);
    expect(out.tracestate!.split(',')).toEqual(Array.from({ length: 32 }, (_, i) => `v${i}=x`));
    const long = contextFromHeaders({ traceparent: TP, tracestate: Array.from({ length: 20 }, (_, i) => `k${i}=${'y'.repeat(60)}`).join(',') });
    expect(traceHeaders(long).tracestate!.length).toBeLessThanOrEqual(512);
  });

  it('with the W3C propagator: malformed traceparents give no parent, and nothing throws', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const bad: unknown[] = [
      TP.toUpperCase(),
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      `ff${TP.slice(2)}`,
      `${TP}-extra`,
      `${TP}${'-x'.repeat(1 << 19)}`,
      Buffer.from([0xff, 0xfe, 0x00, 0xc3]),
      [Buffer.from(TP), Buffer.from(TP)],
      42,
      null,
    ];
    for (const traceparent of bad) expect(trace.getSpanContext(contextFromHeaders({ traceparent })), String(traceparent).slice(0, 60)).toBeUndefined();
    expect(trace.getSpanContext(contextFromHeaders(JSON.parse(`{"__proto__":"p","constructor":"c","traceparent":"${TP}"}`) as Record<string, unknown>))?.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(trace.getSpanContext(contextFromHeaders(null))).toBeUndefined();
  });

  it('gives the root context and no headers with tracing off (the API no-op)', () => {
    // no propagator registered: the API's no-op
    expect(contextFromHeaders({ traceparent: TP })).toBe(ROOT_CONTEXT);
    expect(traceHeaders(context.active())).toEqual({});
  });
});
