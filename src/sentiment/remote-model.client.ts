// A team's own sentiment model behind EARSHOT_SENTIMENT_URL: batched POSTs with a timeout, the
// answer checked against the committed contract, and a circuit breaker so a sick server costs one
// fast fallback per batch instead of a timeout per batch.
import Ajv2020 from 'ajv/dist/2020';
import CircuitBreaker from 'opossum';
import { Counter, Gauge, type Registry } from 'prom-client';
import responseSchema from '../../schema/sentiment-model.response.v1.schema.json';
import type { Logger } from '../shared/logger';
import { readCapped } from '../shared/read-capped';
import type { Intent, SentimentLabel } from './analyzer';
import type { SentimentConfig } from './sentiment.config';

/** One text to score, with what the source said about it. */
export interface ScoreItem {
  text: string;
  lang?: string | null;
  rating?: number | null;
  ratingScale?: number;
}

/** One result of schema/sentiment-model.response.v1.schema.json. */
export interface RemoteResult {
  id?: string;
  score: number;
  label?: SentimentLabel;
  confidence?: number;
  complaint?: boolean;
  intent?: Intent;
  intentConfidence?: number;
  lang?: string;
  topics?: string[];
  explanation?: { token: string; weight: number }[];
}

export interface RemoteBatch {
  model: string;
  results: RemoteResult[];
}

/** Texts longer than this are cut before they are sent (a transformer reads far less anyway). */
export const REMOTE_MAX_TEXT_CHARS = 20_000;
/** A larger answer is not one this contract produces: it is cut off and counted as malformed. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

// strictNumbers: a number beyond the double's range (`"weight": 1e999`) parses as Infinity, which
// `"type": "number"` otherwise takes; stored as JSON it became null, and every enriched event of
// the batch carried `"weight": null`, which interactions.enriched.v1 refuses. Now the answer is
// malformed and the batch is scored by the built-in model (test/integration/output-contract-fuzz.test.ts).
const ajv = new Ajv2020({ allErrors: false, strict: false, strictNumbers: true });
const validateResponse = ajv.compile<RemoteBatch>(responseSchema);

export type RemoteFailure = 'timeout' | 'http_status' | 'network' | 'malformed' | 'breaker_open';

export class RemoteModelError extends Error {
  constructor(
    readonly kind: RemoteFailure,
    message: string,
  ) {
    super(message);
    this.name = 'RemoteModelError';
  }
}

const STATE_VALUE = { closed: 0, halfOpen: 1, open: 2 } as const;

/**
 * The HTTP client of the model server contract (schema/sentiment-model.*.v1.schema.json).
 *
 * Must stay true: a call either resolves with exactly one valid result per item, in order, or
 * rejects with a RemoteModelError within `timeoutMs` (plus queueing for a free slot); never more
 * than `concurrency` requests are in flight; while the breaker is open no request is sent.
 */
export class RemoteSentimentModel {
  readonly breaker: CircuitBreaker<[ScoreItem[]], RemoteBatch>;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly requests?: Counter<'result'>;
  private readonly state?: Gauge;

  constructor(
    private readonly config: SentimentConfig & { url: string },
    private readonly log: Logger,
    registry?: Registry,
  ) {
    this.breaker = new CircuitBreaker((items: ScoreItem[]) => this.post(items), {
      // the request enforces its own timeout with an AbortSignal, which also frees the socket
      timeout: false,
      errorThresholdPercentage: config.breakerErrorPercent,
      volumeThreshold: config.breakerMinRequests,
      rollingCountTimeout: config.breakerWindowMs,
      rollingCountBuckets: 10,
      resetTimeout: config.breakerResetMs,
    });
    if (registry) {
      this.requests = new Counter({
        name: 'earshot_sentiment_model_requests_total',
        help: 'Batches sent to EARSHOT_SENTIMENT_URL by result (ok, timeout, http_status, network, malformed, breaker_open)',
        labelNames: ['result'] as const,
        registers: [registry],
      });
      this.state = new Gauge({
        name: 'earshot_sentiment_model_breaker_state',
        help: 'Circuit breaker in front of EARSHOT_SENTIMENT_URL: 0 closed, 1 half-open, 2 open',
        registers: [registry],
      });
      this.state.set(0);
    }
    const host = new URL(config.url).host;
    this.breaker.on('open', () => {
      this.state?.set(STATE_VALUE.open);
      this.log.warn({ model: host, resetMs: config.breakerResetMs }, 'sentiment model server failing: circuit open, scoring with the built-in model');
    });
    this.breaker.on('halfOpen', () => {
      this.state?.set(STATE_VALUE.halfOpen);
      this.log.info({ model: host }, 'sentiment model server: circuit half-open, trying one batch');
    });
    this.breaker.on('close', () => {
      this.state?.set(STATE_VALUE.closed);
      this.log.info({ model: host }, 'sentiment model server answering again: circuit closed');
    });
  }

  /** Scores one batch (at most `batchSize` items) or rejects with a RemoteModelError. */
  async score(items: ScoreItem[]): Promise<RemoteBatch> {
    await this.acquire();
    try {
      const batch = await this.breaker.fire(items);
      this.requests?.inc({ result: 'ok' });
      return batch;
    } catch (e) {
      const err =
        e instanceof RemoteModelError
          ? e
          : (e as { code?: string }).code === 'EOPENBREAKER'
            ? new RemoteModelError('breaker_open', 'circuit breaker open')
            : new RemoteModelError('network', (e as Error).message);
      this.requests?.inc({ result: err.kind });
      throw err;
    } finally {
      this.release();
    }
  }

  /** Stops the breaker's timers (shutdown). */
  shutdown(): void {
    this.breaker.shutdown();
  }

  private async post(items: ScoreItem[]): Promise<RemoteBatch> {
    const body = JSON.stringify({
      items: items.map((it, i) => ({
        id: String(i),
        text: typeof it.text === 'string' ? it.text.slice(0, REMOTE_MAX_TEXT_CHARS) : '',
        lang: it.lang ?? null,
        rating: typeof it.rating === 'number' && Number.isFinite(it.rating) ? it.rating : null,
        ratingScale: typeof it.ratingScale === 'number' && Number.isFinite(it.ratingScale) ? it.ratingScale : 5,
      })),
    });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json', 'x-earshot-contract': 'sentiment-model.v1' };
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
    const signal = AbortSignal.timeout(this.config.timeoutMs);
    let text: string;
    try {
      const res = await fetch(this.config.url, { method: 'POST', headers, body, signal });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new RemoteModelError('http_status', `model server answered HTTP ${res.status}`);
      }
      text = await readCapped(res, MAX_RESPONSE_BYTES, (declared) => new RemoteModelError('malformed', declared === null ? `model server answer is over ${MAX_RESPONSE_BYTES} bytes` : `model server answer of ${declared} bytes is over ${MAX_RESPONSE_BYTES}`));
    } catch (e) {
      if (e instanceof RemoteModelError) throw e;
      if (signal.aborted) throw new RemoteModelError('timeout', `model server did not answer within ${this.config.timeoutMs} ms`);
      throw new RemoteModelError('network', `model server unreachable: ${(e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new RemoteModelError('malformed', 'model server answered something that is not JSON');
    }
    if (!validateResponse(parsed)) {
      const first = validateResponse.errors?.[0];
      throw new RemoteModelError('malformed', `model server answer breaks the contract: ${first?.instancePath || '/'} ${first?.message ?? ''}`.trim());
    }
    if (parsed.results.length !== items.length) {
      throw new RemoteModelError('malformed', `model server answered ${parsed.results.length} results for ${items.length} texts`);
    }
    parsed.results.forEach((r, i) => {
      if (r.id !== undefined && r.id !== String(i)) throw new RemoteModelError('malformed', `model server answered result id ${JSON.stringify(r.id)} at position ${i}`);
    });
    // What the schema's pattern cannot say: half of a surrogate pair (JSON "\ud800"). The name is
    // stored with every interaction (PostgreSQL's text makes it U+FFFD, so a re-score never found it
    // equal) and is a key of the re-score job's counts, which jsonb refuses: that failed the job.
    if (!(parsed.model as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new RemoteModelError('malformed', 'model server answer breaks the contract: /model contains a lone UTF-16 surrogate');
    }
    return parsed;
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < this.config.concurrency) {
      this.inFlight++;
      return;
    }
    // the slot is handed over by release(), so inFlight stays counted
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }
}

