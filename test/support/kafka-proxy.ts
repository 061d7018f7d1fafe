import type net from 'node:net';
import { TcpProxy } from './tcp-proxy';

/**
 * A TCP relay in front of the test broker that a Kafka client can be cut off by: `cut()` resets
 * every connection and refuses new ones (the broker's host gone away), `restore()` listens on the
 * same port again. A client learns the broker's address from Metadata responses and then connects
 * to it directly, so the relay writes its own port into them (Metadata, API key 3, every version):
 * everything the client sends goes through it. Other responses pass as they are.
 */
export class KafkaProxy extends TcpProxy {
  /** The address clients bootstrap from. */
  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  protected override relay(client: net.Socket, upstream: net.Socket): void {
    // correlation id → [api key, api version] of the requests in flight on this connection
    const asked = new Map<number, [number, number]>();
    frames(client, (frame) => {
      if (frame.length >= 12) asked.set(frame.readInt32BE(8), [frame.readInt16BE(4), frame.readInt16BE(6)]);
      upstream.write(frame);
    });
    frames(upstream, (frame) => {
      const id = frame.readInt32BE(4);
      const req = asked.get(id);
      asked.delete(id);
      if (req && req[0] === 3) rewriteMetadataPorts(frame, req[1], this.targetPort, this.port);
      client.write(frame);
    });
  }
}

/** Calls `each` with every whole Kafka frame (4-byte length and what follows) read from `socket`. */
function frames(socket: net.Socket, each: (frame: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = pending.readInt32BE(0) + 4;
      if (pending.length < size) break;
      each(Buffer.from(pending.subarray(0, size)));
      pending = pending.subarray(size);
    }
  });
}

/** A reader of the Kafka protocol's integers and varints over a frame. */
class Cursor {
  constructor(
    readonly buf: Buffer,
    public at: number,
  ) {}

  uvarint(): number {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.buf[this.at++]!;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
  }

  skipTags(): void {
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint();
      this.at += this.uvarint();
    }
  }

  skipString(compact: boolean): void {
    const len = compact ? this.uvarint() - 1 : this.buf.readInt16BE(this.at);
    if (!compact) this.at += 2;
    if (len > 0) this.at += len;
  }
}

/** Writes `to` over each broker port `from` in a Metadata response of version `version`. */
function rewriteMetadataPorts(frame: Buffer, version: number, from: number, to: number): void {
  const flexible = version >= 9;
  const c = new Cursor(frame, 8);
  if (flexible) c.skipTags();
  if (version >= 3) c.at += 4; // throttle_time_ms
  const brokers = flexible ? c.uvarint() - 1 : (c.at += 4, frame.readInt32BE(c.at - 4));
  for (let i = 0; i < brokers; i++) {
    c.at += 4; // node_id
    c.skipString(flexible); // host
    if (frame.readInt32BE(c.at) === from) frame.writeInt32BE(to, c.at);
    c.at += 4;
    if (version >= 1) c.skipString(flexible); // rack (nullable)
    if (flexible) c.skipTags();
  }
}
