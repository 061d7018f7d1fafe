import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger';
import type { LiveEventKind } from './live-events';
import { LiveHub, TOO_SLOW_CLOSE_CODE, type LiveConnection } from './live-hub';

function source() {
  const handlers = new Map<LiveEventKind, (ids: string[]) => void>();
  return {
    on(kind: LiveEventKind, h: (ids: string[]) => void) {
      handlers.set(kind, h);
      return () => handlers.delete(kind);
    },
    emit(kind: LiveEventKind, ids: string[]) {
      handlers.get(kind)?.(ids);
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('LiveHub', () => {
  const rows = (ids: string[]) => Promise.resolve(ids.map((id) => ({ id })));
  const loaders = { interaction: rows, listening_item: rows, customer_sentiment: rows };

  it('loads the rows once per event and gives each subscriber what its filter accepts', async () => {
    const src = source();
    let loads = 0;
    const hub = new LiveHub(src, { ...loaders, interaction: (ids) => (loads++, rows(ids)) }, createLogger('silent'));
    const conn: LiveConnection = { bufferedAmount: () => 0, close: () => undefined };
    const all = hub.subscribe<{ id: string }>('interaction', () => true, conn, { queueLimit: 10, maxBufferedBytes: 1e6 }, () => undefined);
    const onlyB = hub.subscribe<{ id: string }>('interaction', (r) => r.id === 'b', conn, { queueLimit: 10, maxBufferedBytes: 1e6 }, () => undefined);
    src.emit('interaction', ['a', 'b']);
    await flush();
    expect(loads).toBe(1);
    expect((await all.next()).value).toEqual({ id: 'a' });
    expect((await all.next()).value).toEqual({ id: 'b' });
    expect((await onlyB.next()).value).toEqual({ id: 'b' });
    await all.return!();
    await onlyB.return!();
    expect(hub.count('interaction')).toBe(0);
  });

  it('closes a subscriber that does not read once its queue is full, and keeps nothing for it', async () => {
    const src = source();
    const hub = new LiveHub(src, loaders, createLogger('silent'));
    const closed: [number, string][] = [];
    const conn: LiveConnection = { bufferedAmount: () => 0, close: (code, reason) => closed.push([code, reason]) };
    const slow = hub.subscribe('interaction', () => true, conn, { queueLimit: 3, maxBufferedBytes: 1e6 }, () => undefined);
    src.emit('interaction', ['1', '2', '3']);
    await flush();
    expect(closed).toEqual([]);
    src.emit('interaction', ['4']);
    await flush();
    expect(closed).toEqual([[TOO_SLOW_CLOSE_CODE, expect.stringContaining('too slow')]]);
    expect(hub.count('interaction')).toBe(0);
    expect(await slow.next()).toEqual({ value: undefined, done: true });
    // further events cost the closed subscriber nothing
    for (let i = 0; i < 1000; i++) src.emit('interaction', [String(i)]);
    await flush();
    expect(closed.length).toBe(1);
  });

  it('closes a subscriber whose socket holds more unsent bytes than allowed', async () => {
    const src = source();
    const hub = new LiveHub(src, loaders, createLogger('silent'));
    const closed: number[] = [];
    let buffered = 0;
    hub.subscribe('customer_sentiment', () => true, { bufferedAmount: () => buffered, close: (c) => closed.push(c) }, { queueLimit: 100, maxBufferedBytes: 1000 }, () => undefined);
    src.emit('customer_sentiment', ['a']);
    await flush();
    buffered = 5000;
    src.emit('customer_sentiment', ['b']);
    await flush();
    expect(closed).toEqual([TOO_SLOW_CLOSE_CODE]);
  });

  it('renews the per-event state before yielding each event to a waiting reader', async () => {
    const src = source();
    const hub = new LiveHub(src, loaders, createLogger('silent'));
    let renewed = 0;
    const it = hub.subscribe('listening_item', () => true, { bufferedAmount: () => 0, close: () => undefined }, { queueLimit: 5, maxBufferedBytes: 1e6 }, () => renewed++);
    const pending = it.next();
    src.emit('listening_item', ['x']);
    expect((await pending).value).toEqual({ id: 'x' });
    expect(renewed).toBe(1);
  });
});
