import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One item of schema/sentiment-model.request.v1.schema.json */
export interface ModelRequestItem {
  id: string;
  text: string;
  lang: string | null;
  rating: number | null;
  ratingScale: number;
}

/**
 * How the server answers: `ok` per the contract; `status500`; `hang` (never answers; the socket
 * stays open until the client gives up or the server closes); `garbage` (200 with a body that is
 * not JSON); `wrongCount` (one result short); `badSchema` (a score of 7).
 */
export type ModelServerMode = 'ok' | 'status500' | 'hang' | 'garbage' | 'wrongCount' | 'badSchema';

export type ModelAnswer = { score: number } & Record<string, unknown>;

/**
 * A team's model server as Earshot sees it: a real HTTP server speaking the sentiment-model.v1
 * contract, with a scoring rule given by the test, requests recorded, and failures on demand.
 */
export class ModelServer extends EventEmitter {
  readonly requests: { items: ModelRequestItem[]; headers: http.IncomingHttpHeaders }[] = [];
  mode: ModelServerMode = 'ok';
  private held = new Map<number, { arrived: () => void; release: Promise<void> }>();
  private server!: http.Server;
  url = '';

  constructor(
    readonly model: string,
    private readonly answer: (item: ModelRequestItem) => ModelAnswer,
  ) {
    super();
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/score`;
    return this;
  }

  /** Sizes of the batches received, in arrival order. */
  get batchSizes(): number[] {
    return this.requests.map((r) => r.items.length);
  }

  /** Holds the n-th request (1-based, counted from the start) until `release()`; `arrived` resolves when it comes. */
  hold(n: number): { arrived: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.held.set(n, { arrived, release: releaseP });
    return { arrived: arrivedP, release };
  }

  /** Resolves once `n` requests in total have arrived. */
  async waitForRequests(n: number): Promise<void> {
    while (this.requests.length < n) await once(this, 'request');
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { items: ModelRequestItem[] };
    this.requests.push({ items: body.items, headers: req.headers });
    const n = this.requests.length;
    const mode = this.mode;
    this.emit('request', n);
    const hold = this.held.get(n);
    if (hold) {
      hold.arrived();
      await hold.release;
    }
    if (mode === 'hang') return; // the client's timeout (or close()) ends it
    if (mode === 'status500') {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"model crashed"}');
      return;
    }
    if (mode === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('<html>502 Bad Gateway</html>');
      return;
    }
    let results: Record<string, unknown>[] = body.items.map((it) => ({ id: it.id, ...this.answer(it) }));
    if (mode === 'wrongCount') results = results.slice(1);
    if (mode === 'badSchema') results = results.map((r) => ({ ...r, score: 7 }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ model: this.model, results }));
  }
}
