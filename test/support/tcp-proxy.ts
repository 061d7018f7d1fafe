import net from 'node:net';

/**
 * A TCP relay in front of a server (PostgreSQL, the Kafka broker) that the service can be cut off
 * by: `cut()` resets every open connection and refuses new ones, which is what a client sees when
 * the server's host goes away; `restore()` listens on the same port again. What passes is copied
 * as it is, unless a subclass relays it otherwise (`relay`).
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly host: string,
    protected readonly targetPort: number,
  ) {}

  async listen(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      this.relay(client, upstream);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Copies each side's bytes to the other. */
  protected relay(client: net.Socket, upstream: net.Socket): void {
    client.pipe(upstream).pipe(client);
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
    for (const s of this.sockets) s.resetAndDestroy();
    await closed;
  }

  async restore(): Promise<void> {
    if (!this.server) await this.listen();
  }
}
