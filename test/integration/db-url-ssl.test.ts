import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClientConfig, pgConnection, settlePreferSsl } from '../../src/db/pg-connection';
import { PinnedClient } from '../../src/db/session-settings';
import { createLogger } from '../../src/shared/logger';
import { startTestApp } from '../support/app';
import { NoSslFront, PLAIN_ACCEPTED, selfSignedCertificate, startFakeTlsPostgres, TLS_ACCEPTED, type TestCertificate } from '../support/fake-pg-tls';
import { createTestDatabase, TEST_PG_ENV } from '../support/postgres';

// DATABASE_URL's sslmode as libpq reads it, on the connections Earshot makes (PinnedClient: every
// pool, the outbox relay, the live-events session). node-postgres 8 took prefer, require and
// verify-ca as verify-full, printing a multi-line SECURITY WARNING at every start: require against
// a server with a certificate of its own (the usual managed database) failed with "self-signed
// certificate". A stand-in server on loopback completes the TLS handshake with a self-signed
// certificate for another host name than 127.0.0.1, then ends the connection with a FATAL error
// saying how far the client got.

describe('DATABASE_URL sslmode and sslrootcert', () => {
  let cert: TestCertificate;
  let other: TestCertificate;
  let server: Awaited<ReturnType<typeof startFakeTlsPostgres>>;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);

  beforeAll(async () => {
    cert = selfSignedCertificate('DNS:elsewhere.example');
    other = selfSignedCertificate('DNS:elsewhere.example');
    server = await startFakeTlsPostgres(cert);
    process.on('warning', onWarning);
  });

  afterAll(async () => {
    process.off('warning', onWarning);
    await server?.close();
    cert?.remove();
    other?.remove();
  });

  /** How far a connection with these URL parameters got: the fake server's words, or the client's TLS error. */
  const attempt = async (query: string): Promise<string> => {
    const client = new PinnedClient({ connectionString: `postgres://earshot@127.0.0.1:${server.port}/earshot?${query}`, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return 'connected';
    } catch (e) {
      return (e as Error).message;
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  it('require and prefer encrypt without checking the certificate; require with sslrootcert checks it against that authority', async () => {
    expect(await attempt('sslmode=require')).toBe(TLS_ACCEPTED);
    expect(await attempt('sslmode=prefer')).toBe(TLS_ACCEPTED);
    // libpq: require with a root certificate verifies as verify-ca (the authority, not the host name)
    expect(await attempt(`sslmode=require&sslrootcert=${encodeURIComponent(cert.certFile)}`)).toBe(TLS_ACCEPTED);
    expect(await attempt(`sslmode=require&sslrootcert=${encodeURIComponent(other.certFile)}`)).toMatch(/self[- ]signed certificate/);
  });

  it('verify-ca checks the authority and not the host name; verify-full checks both', async () => {
    expect(await attempt(`sslmode=verify-ca&sslrootcert=${encodeURIComponent(cert.certFile)}`)).toBe(TLS_ACCEPTED);
    expect(await attempt(`sslmode=verify-ca&sslrootcert=${encodeURIComponent(other.certFile)}`)).toMatch(/self[- ]signed certificate/);
    expect(await attempt(`sslmode=verify-full&sslrootcert=${encodeURIComponent(cert.certFile)}`)).toMatch(/Hostname\/IP does not match certificate's altnames/);
    expect(await attempt('sslmode=verify-full')).toMatch(/self[- ]signed certificate/);
  });

  it('disable, ssl=0 and no parameter ask for no SSL; no-verify and ssl=true keep their node-postgres meaning', async () => {
    expect(await attempt('sslmode=disable')).toBe(PLAIN_ACCEPTED);
    expect(await attempt('ssl=0')).toBe(PLAIN_ACCEPTED);
    expect(await attempt('application_name=x')).toBe(PLAIN_ACCEPTED);
    expect(await attempt('sslmode=no-verify')).toBe(TLS_ACCEPTED);
    expect(await attempt('ssl=true')).toMatch(/self[- ]signed certificate/);
  });

  it('prints no warning about sslmode, and hands node-postgres a URL without the parameters Earshot reads', () => {
    expect(warnings.filter((w) => /sslmode|SSL modes/i.test(w))).toEqual([]);
    const c = pgConnection(`postgres://bob:pw@db:5432/earshot?application_name=a&sslmode=require&connect_timeout=3&sslrootcert=${encodeURIComponent(cert.certFile)}&options=-c%20x%3D1`);
    expect(c.connectionString).toBe('postgres://bob:pw@db:5432/earshot?application_name=a&options=-c%20x%3D1');
    expect(c.connectTimeoutMs).toBe(3_000);
    expect(c.ssl).toMatchObject({ ca: cert.cert });
    // sslnegotiation is passed on beside the URL: left in it, node-postgres turned SSL on, fully verified, whatever sslmode said
    expect(pgClientConfig({ connectionString: 'postgres://bob@db/earshot?sslnegotiation=direct&sslmode=require', connectionTimeoutMillis: 10_000 })).toEqual({
      connectionString: 'postgres://bob@db/earshot',
      ssl: { rejectUnauthorized: false },
      sslnegotiation: 'direct',
      connectionTimeoutMillis: 10_000,
    });
    // libpq's Unix-socket form keeps its host parameter as written
    expect(pgConnection('postgres://bob@/earshot?host=/run/postgresql&sslmode=disable').connectionString).toBe('postgres://bob@/earshot?host=/run/postgresql');
  });
});

// libpq's default sslmode, prefer, uses SSL when the server offers it and connects without it
// when the server answers its SSLRequest with 'N' (ssl = off). node-postgres failed the connection
// instead ("The server does not support SSL connections"): a URL copied with sslmode=prefer could
// not reach such a server at all. A relay in front of the test's PostgreSQL answers 'N' to every
// SSLRequest (whatever the server's own ssl setting) and passes the rest through.
describe('DATABASE_URL sslmode=prefer against a server without SSL', () => {
  let front: NoSslFront;

  beforeAll(async () => {
    const admin = new URL(process.env[TEST_PG_ENV]!);
    front = new NoSslFront(admin.hostname, Number(admin.port || 5432));
    await front.listen();
  });

  afterAll(async () => {
    await front?.cut();
  });

  /** The test server's admin URL through the relay, with sslmode=prefer; unique, as the answer is kept per URL. */
  const viaFront = (base = process.env[TEST_PG_ENV]!): string => {
    const u = new URL(base);
    u.hostname = '127.0.0.1';
    u.port = String(front.port);
    u.searchParams.set('application_name', `prefer-${randomBytes(4).toString('hex')}`);
    u.searchParams.set('sslmode', 'prefer');
    return u.toString();
  };

  it('connects without SSL, asking the server once per URL, and logs the fallback once at info', async () => {
    const url = viaFront();
    const lines: string[] = [];
    const log = createLogger('info', {}, { write: (line: string) => void lines.push(line) });
    const before = { connections: front.connections, sslRequests: front.sslRequests };
    await Promise.all([settlePreferSsl(url, { log }), settlePreferSsl(url, { log })]);
    // two clients at once, as a pool opens them; a third made after the answer
    const clients = [new PinnedClient({ connectionString: url }), new PinnedClient({ connectionString: url })];
    try {
      await Promise.all(clients.map((c) => c.connect()));
      clients.push(new PinnedClient({ connectionString: url }));
      await clients[2]!.connect();
      for (const c of clients) {
        const { rows } = await c.query<{ ssl: boolean; one: number }>('SELECT ssl, 1 AS one FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        expect(rows).toEqual([{ ssl: false, one: 1 }]);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    // one SSLRequest (the probe): the three connections asked for no SSL
    expect({ connections: front.connections - before.connections, sslRequests: front.sslRequests - before.sslRequests }).toEqual({ connections: 4, sslRequests: 1 });
    const infos = lines.map((l) => JSON.parse(l) as { level: string; msg: string; port: number }).filter((l) => /offers no SSL/.test(l.msg));
    expect(infos).toEqual([expect.objectContaining({ level: 'info', port: front.port, msg: expect.stringMatching(/sslmode=prefer connects without it/) })]);
  });

  it('a client made before the answer connects too (the first of a pool)', async () => {
    const url = viaFront();
    const client = new PinnedClient({ connectionString: url, connectionTimeoutMillis: 5_000 });
    try {
      await client.connect();
      expect((await client.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  it('the service starts and answers on DATABASE_URL with sslmode=prefer (pools, session check, relay)', async () => {
    const database = await createTestDatabase('prefer');
    const before = { connections: front.connections, sslRequests: front.sslRequests };
    const app = await startTestApp({ DATABASE_URL: viaFront(database.url) }, 'prefer', database);
    try {
      const r = await app.gql<{ __typename: string }>('{ __typename }');
      expect(r.status).toBe(200);
      expect(r.data).toEqual({ __typename: 'Query' });
      // through the server without SSL: asked once, every connection of the start without SSL
      expect(front.sslRequests - before.sslRequests).toBe(1);
      expect(front.connections - before.connections).toBeGreaterThan(2);
    } finally {
      await app.close();
    }
  });
});
