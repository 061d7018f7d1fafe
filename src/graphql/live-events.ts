import type { Logger } from '../shared/logger';
import { PinnedClient } from '../db/session-settings';
import { keepWhileIdle } from '../db/sql';

/** Channel the triggers of migration LiveEvents1765500000000 NOTIFY on. */
export const LIVE_EVENTS_CHANNEL = 'earshot_events';

export type LiveEventKind = 'interaction' | 'listening_item' | 'customer_sentiment';

type Handler = (ids: string[]) => void;

/**
 * One LISTEN session per process on `earshot_events`: every replica hears every committed
 * change, whichever replica (or ingest process, or CRM sync) made it.
 *
 * What must stay true: a handler sees only ids of committed rows of this process's schema;
 * a lost session is reopened (with backoff) and the gap is logged, since NOTIFY does not
 * replay what was sent while nobody listened.
 */
export class LiveEvents {
  private client: PinnedClient | null = null;
  private readonly handlers = new Map<LiveEventKind, Set<Handler>>();
  private stopped = false;
  private retryMs = 200;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly connectionString: string,
    private readonly schema: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  on(kind: LiveEventKind, handler: Handler): () => void {
    const set = this.handlers.get(kind) ?? new Set();
    set.add(handler);
    this.handlers.set(kind, set);
    return () => set.delete(handler);
  }

  hasHandlers(kind: LiveEventKind): boolean {
    return (this.handlers.get(kind)?.size ?? 0) > 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new PinnedClient({ connectionString: this.connectionString, application_name: 'earshot-live-events', connectionTimeoutMillis: 5_000, keepAlive: true });
    client.on('notification', (n) => {
      if (n.channel !== LIVE_EVENTS_CHANNEL || !n.payload) return;
      try {
        const event = JSON.parse(n.payload) as { s: string; t: LiveEventKind; ids: string[] };
        if (event.s !== this.schema) return;
        for (const h of this.handlers.get(event.t) ?? []) h(event.ids);
      } catch (err) {
        this.log.warn({ err }, 'unreadable live event');
      }
    });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.log.warn({ err, retryMs: this.retryMs }, 'live events session lost: subscribers miss what commits until it is back');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      await keepWhileIdle(client);
      await client.query(`LISTEN ${LIVE_EVENTS_CHANNEL}`);
      this.client = client;
      this.retryMs = 200;
    } catch (err) {
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.log.warn({ err, retryMs: this.retryMs }, 'could not LISTEN for live events; retrying');
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 5_000);
  }
}
