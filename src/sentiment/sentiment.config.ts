/** Where sentiment comes from: the built-in model, or a team's own model server in front of it. */
export interface SentimentConfig {
  /** a team's model server (POST, schema/sentiment-model.*.v1.schema.json); null: the built-in model only */
  readonly url: string | null;
  /** sent as `Authorization: Bearer …` when set */
  readonly token: string | null;
  /** one request, connect to last byte; slower answers count as failures and fall back */
  readonly timeoutMs: number;
  /** texts per request */
  readonly batchSize: number;
  /** requests to the model server in flight at once per process */
  readonly concurrency: number;
  /** the breaker opens when at least this share (percent) of the requests in the window failed… */
  readonly breakerErrorPercent: number;
  /** …and the window holds at least this many requests */
  readonly breakerMinRequests: number;
  /** rolling window of the failure share */
  readonly breakerWindowMs: number;
  /** how long an open breaker sends nothing before one trial request (half-open) */
  readonly breakerResetMs: number;
  /** stored interactions per re-score transaction (keyset page) */
  readonly rescoreBatchSize: number;
  /** the built-in model's weights file; null: the committed models/<DEFAULT_MODEL_NAME>.bin.gz */
  readonly modelFile: string | null;
}

export function parseSentimentConfig(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  problems: string[],
): SentimentConfig {
  let url: string | null = null;
  const raw = str('EARSHOT_SENTIMENT_URL');
  if (raw !== null) {
    try {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
      url = raw;
    } catch {
      problems.push('EARSHOT_SENTIMENT_URL: expected an http or https URL');
    }
  }
  const token = str('EARSHOT_SENTIMENT_TOKEN');
  // "Bearer abc" went out as "Bearer Bearer abc"; a bearer token has no white space (RFC 6750)
  if (token !== null && /\s/.test(token)) problems.push(`EARSHOT_SENTIMENT_TOKEN: has white space inside; give the token alone${/^bearer\s/i.test(token) ? ', without "Bearer " (Earshot sends it)' : ''}`);
  return {
    url,
    token,
    timeoutMs: int('EARSHOT_SENTIMENT_TIMEOUT_MS', 2_000, 10, 120_000),
    batchSize: int('EARSHOT_SENTIMENT_BATCH_SIZE', 64, 1, 1_000),
    concurrency: int('EARSHOT_SENTIMENT_CONCURRENCY', 4, 1, 64),
    breakerErrorPercent: int('EARSHOT_SENTIMENT_BREAKER_ERROR_PERCENT', 50, 1, 100),
    breakerMinRequests: int('EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS', 5, 1, 10_000),
    breakerWindowMs: int('EARSHOT_SENTIMENT_BREAKER_WINDOW_MS', 10_000, 100, 3_600_000),
    breakerResetMs: int('EARSHOT_SENTIMENT_BREAKER_RESET_MS', 30_000, 10, 3_600_000),
    rescoreBatchSize: int('EARSHOT_RESCORE_BATCH_SIZE', 500, 1, 10_000),
    modelFile: str('EARSHOT_SENTIMENT_MODEL_FILE'),
  };
}
