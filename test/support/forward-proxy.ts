import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

/**
 * What the CRM proxy tests stand between Earshot and a local CRM server: an egress proxy in a few
 * lines of node:http, a certificate for 127.0.0.1 trusted by the test process only, and TLS in
 * front of a plain local server (so a https:// base path is reached through CONNECT).
 */

export interface ForwardProxy {
  url: string;
  /** `METHOD absolute-url` of each forwarded request */
  forwarded: string[];
  /** `host:port` of each CONNECT */
  tunnels: string[];
  close(): Promise<void>;
}

/** Absolute-form requests are forwarded (http:// targets), CONNECT is tunnelled (https:// targets). */
export async function forwardProxy(): Promise<ForwardProxy> {
  const forwarded: string[] = [];
  const tunnels: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    forwarded.push(`${req.method} ${req.url}`);
    const target = new URL(req.url!);
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: `${target.pathname}${target.search}`, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    tunnels.push(req.url!);
    const [host, port] = req.url!.split(':');
    const up = net.connect(Number(port), host!, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(up);
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  server.on('connection', (s: net.Socket) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    forwarded,
    tunnels,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface TrustedCert {
  cert: string;
  key: string;
  /** gives the process its default CAs back and removes the files */
  restore(): void;
}

/** A two-day certificate for 127.0.0.1 (made with `openssl`), added to this process's default CAs. */
export function trustedLocalCert(prefix: string): TrustedCert {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
  const key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
  const defaultCas = tls.getCACertificates('default');
  tls.setDefaultCACertificates([...defaultCas, cert]);
  return {
    cert,
    key,
    restore() {
      tls.setDefaultCACertificates(defaultCas);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TlsFront {
  /** `https://127.0.0.1:<port>` */
  url: string;
  close(): Promise<void>;
}

/** TLS in front of the plain server at `plainUrl`, with `c`'s certificate. */
export async function tlsFront(plainUrl: string, c: Pick<TrustedCert, 'cert' | 'key'>): Promise<TlsFront> {
  const sockets = new Set<net.Socket>();
  const plain = new URL(plainUrl);
  const front = tls.createServer({ key: c.key, cert: c.cert }, (socket) => {
    const up = net.connect(Number(plain.port), plain.hostname);
    sockets.add(socket).add(up);
    socket.pipe(up).pipe(socket);
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  return {
    url: `https://127.0.0.1:${(front.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}
