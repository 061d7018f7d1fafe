import net from 'node:net';

/** A statement a client sent on a session the server had already ended (the first bytes of its text). */
export interface MetEndedSession {
  applicationName: string;
  statement: string;
}

/**
 * A TCP relay in front of PostgreSQL that, once `holdIdleSessionEnds()` is called, keeps from the
 * client the news that PostgreSQL ended a session for its `idle_session_timeout` (the FATAL
 * 57P05 message and the close after it) until the client sends its next statement on it: the
 * client then hears of the end in answer to that statement. This is the race a loaded machine
 * loses now and then: the server ends a pooled session that has been idle for the timeout while
 * the client, whose event loop had not read the news yet, hands the session to its next statement
 * (CI: a re-score page's statement failed with "terminating connection due to idle-session
 * timeout"). Held, it happens every time. `releaseHeldEnds()` gives every held end to its client
 * at once and holds no more.
 */
export class LateSessionEndProxy {
  private server: net.Server | null = null;
  private holding = false;
  /** connections whose end is held: delivers it */
  private readonly held = new Set<() => void>();
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  /** statements that met a session the server had ended, in order */
  readonly metEnded: MetEndedSession[] = [];
  port = 0;

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async listen(): Promise<void> {
    const server = net.createServer((client) => this.relay(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** From now on, an end of an idle session for idle_session_timeout waits for the client's next statement. */
  holdIdleSessionEnds(): void {
    this.holding = true;
  }

  /** How many ended sessions' news is held now. */
  get heldEnds(): number {
    return this.held.size;
  }

  /** Resolves once `n` statements in all have met a session the server had ended. */
  async statementsMetEnded(n: number): Promise<void> {
    if (this.metEnded.length >= n) return;
    await new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
  }

  /** Gives every held end to its client now, and holds no more. */
  releaseHeldEnds(): void {
    this.holding = false;
    for (const deliver of [...this.held]) deliver();
  }

  async close(): Promise<void> {
    this.releaseHeldEnds();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, this.host);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    let applicationName = '';
    let first = true;
    /** the server's bytes from its FATAL 57P05 on, while held */
    let heldBytes: Buffer[] | null = null;
    const deliver = (): void => {
      if (!heldBytes) return;
      const bytes = Buffer.concat(heldBytes);
      heldBytes = null;
      this.held.delete(deliver);
      client.end(bytes);
    };
    upstream.on('data', (d: Buffer) => {
      if (heldBytes) {
        heldBytes.push(d);
        return;
      }
      if (this.holding && isIdleSessionEnd(d)) {
        heldBytes = [d];
        this.held.add(deliver);
        return;
      }
      client.write(d);
    });
    upstream.on('close', () => {
      if (!heldBytes) client.destroy();
    });
    client.on('data', (d: Buffer) => {
      if (first) {
        first = false;
        applicationName = /application_name\0([^\0]*)\0/.exec(d.toString('latin1'))?.[1] ?? '';
      }
      if (heldBytes) {
        // a statement on a session that has ended: it hears so now, as the answer
        this.metEnded.push({ applicationName, statement: statementText(d) });
        for (const w of this.waiters.filter((w) => this.metEnded.length >= w.n)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
        deliver();
        return;
      }
      upstream.write(d);
    });
    client.on('close', () => {
      this.held.delete(deliver);
      upstream.destroy();
    });
  }
}

/** PostgreSQL's ErrorResponse ('E') of severity FATAL with SQLSTATE 57P05 (idle_session_timeout). */
function isIdleSessionEnd(d: Buffer): boolean {
  return d[0] === 0x45 && d.includes('SFATAL\0', 0, 'latin1') && d.includes('C57P05\0', 0, 'latin1');
}

/** The SQL text of a simple ('Q') or extended ('P', parse) query message, for the record. */
function statementText(d: Buffer): string {
  const type = String.fromCharCode(d[0] ?? 0);
  const body = d.subarray(5).toString('utf8');
  const text = type === 'P' ? body.split('\0')[1] ?? '' : type === 'Q' ? body.split('\0')[0] ?? '' : `(${type})`;
  return text.replace(/\s+/g, ' ').trim().slice(0, 60);
}
