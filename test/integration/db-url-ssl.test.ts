import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClientConfig, pgConnection } from '../../src/db/pg-connection';
import { PinnedClient } from '../../src/db/session-settings';
import { PLAIN_ACCEPTED, selfSignedCertificate, startFakeTlsPostgres, TLS_ACCEPTED, type TestCertificate } from '../support/fake-pg-tls';

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
