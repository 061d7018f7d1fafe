import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { TcpProxy } from './tcp-proxy';

/** A self-signed certificate (its own authority) for `altName` (`DNS:name` or `IP:address`), made with openssl, in a folder of its own. */
export interface TestCertificate {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  remove(): void;
}

export function selfSignedCertificate(altName: string): TestCertificate {
  const dir = mkdtempSync(path.join(tmpdir(), 'earshot-cert-'));
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${altName.replace(/^[A-Z]+:/, '')}`, '-addext', `subjectAltName=${altName}`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { dir, certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The message the fake server's FATAL error carries once a client got through TLS to its startup message. */
export const TLS_ACCEPTED = 'fake server: TLS accepted';
/** … and when the client sent its startup message without asking for SSL. */
export const PLAIN_ACCEPTED = 'fake server: no TLS';

/**
 * A stand-in for PostgreSQL that speaks just enough of the protocol to show how a client set up
 * its connection: it answers SSLRequest with 'S' and completes the TLS handshake with `cert`,
 * then answers the startup message with a FATAL error naming what it saw ({@link TLS_ACCEPTED},
 * {@link PLAIN_ACCEPTED}). A client that refuses the certificate fails in the handshake instead.
 */
export async function startFakeTlsPostgres(cert: TestCertificate): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (first: Buffer) => {
      if (!isSslRequest(first)) {
        socket.end(fatal(PLAIN_ACCEPTED));
        return;
      }
      socket.write('S');
      const secure = new tls.TLSSocket(socket, { isServer: true, cert: cert.cert, key: cert.key });
      secure.on('error', () => undefined);
      secure.once('data', () => secure.end(fatal(TLS_ACCEPTED)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** An ErrorResponse: severity FATAL, SQLSTATE 28000, the message. */
function fatal(message: string): Buffer {
  const fields = Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', '28000'), field('M', message), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([head, fields]);
}

function field(code: string, value: string): Buffer {
  return Buffer.concat([Buffer.from(code), Buffer.from(value, 'utf8'), Buffer.from([0])]);
}

/**
 * A PostgreSQL server without SSL, in front of a real one: answers an SSLRequest with 'N' (what
 * PostgreSQL with `ssl = off` answers) and relays the rest of the connection as it is. Counts the
 * connections and the SSLRequests it saw.
 */
export class NoSslFront extends TcpProxy {
  connections = 0;
  sslRequests = 0;

  protected override relay(client: net.Socket, upstream: net.Socket): void {
    this.connections++;
    client.once('data', (first: Buffer) => {
      let rest = first;
      if (isSslRequest(first)) {
        this.sslRequests++;
        client.write('N');
        rest = first.subarray(8);
      }
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream).pipe(client);
    });
  }
}

function isSslRequest(first: Buffer): boolean {
  return first.length >= 8 && first.readInt32BE(0) === 8 && first.readInt32BE(4) === 80877103;
}
