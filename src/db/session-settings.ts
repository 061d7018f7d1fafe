import pg from 'pg';
import { pgClientConfig, preferWithoutSsl, settlePreferSsl } from './pg-connection';
import { pinSessionSettings } from './sql';

/**
 * A node-postgres client whose session has Earshot's settings pinned (PINNED_SESSION_SETTINGS in
 * ./sql.ts) before `connect()` resolves: a pool hands it out only then, and a client that could
 * not pin them fails to connect (and is closed) rather than run with the database's defaults; a
 * connection lost while it pins them fails `connect`, and does not end the process.
 * Every connection Earshot reads or writes its data on is one: the data sources' pools
 * (./data-source.ts: API, ingest, jobs, migrations), the outbox relay's pool and leader session,
 * the live-events session.
 */
export class PinnedClient extends pg.Client {
  private readonly url: string | undefined;
  private readonly preferTimeoutMs: number | undefined;

  /**
   * A `connectionString` (DATABASE_URL) is read as libpq reads its SSL parameters and
   * connect_timeout (./pg-connection.ts): every connection Earshot makes from the URL is one.
   */
  constructor(config?: string | pg.ClientConfig) {
    const given = typeof config === 'string' ? { connectionString: config } : (config ?? {});
    const own = pgClientConfig(given);
    super(own);
    this.url = given.connectionString;
    this.preferTimeoutMs = own.connectionTimeoutMillis || undefined;
  }

  /**
   * sslmode=prefer against a server without SSL: the server is asked once per URL
   * (settlePreferSsl); a client made before the answer, set up for SSL, goes without it. pg reads
   * `ssl` (the client's and its connection's) only when it connects.
   */
  private async settleSsl(): Promise<void> {
    if (!this.url || !this.ssl) return;
    await settlePreferSsl(this.url, { timeoutMs: this.preferTimeoutMs });
    if (!preferWithoutSsl(this.url)) return;
    this.ssl = false;
    (this.connection as unknown as { ssl: unknown }).ssl = false;
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
    const pinned = (async () => {
      await this.settleSsl();
      await super.connect();
      // From here until `connect` resolves, a lost connection is emitted as 'error' on this client
      // (node-postgres emits it beside failing the statement), and a pool listens only once
      // `connect` resolved: with no listener the error ended the process (CI: an unhandled
      // `read ECONNRESET` while the database's host was cut away). The pinning statement fails
      // with the same error, and so does `connect`.
      const pinning = (): void => undefined;
      this.on('error', pinning);
      try {
        await pinSessionSettings(this);
      } catch (e) {
        await this.end().catch(() => undefined);
        throw e;
      } finally {
        this.removeListener('error', pinning);
      }
      return this;
    })();
    if (!callback) return pinned;
    const done = callback as (err: Error | null, c?: pg.Client) => void;
    pinned.then((c) => done(null, c), (e: Error) => done(e));
  }
}
