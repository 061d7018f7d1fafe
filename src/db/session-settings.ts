import pg from 'pg';
import { pinSessionSettings } from './sql';

/**
 * A node-postgres client whose session has Earshot's settings pinned (PINNED_SESSION_SETTINGS in
 * ./sql.ts) before `connect()` resolves: a pool hands it out only then, and a client that could
 * not pin them fails to connect (and is closed) rather than run with the database's defaults.
 * Every connection Earshot reads or writes its data on is one: the data sources' pools
 * (./data-source.ts: API, ingest, jobs, migrations), the outbox relay's pool and leader session,
 * the live-events session.
 */
export class PinnedClient extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
    const pinned = (async () => {
      await super.connect();
      try {
        await pinSessionSettings(this);
      } catch (e) {
        await this.end().catch(() => undefined);
        throw e;
      }
      return this;
    })();
    if (!callback) return pinned;
    const done = callback as (err: Error | null, c?: pg.Client) => void;
    pinned.then((c) => done(null, c), (e: Error) => done(e));
  }
}
