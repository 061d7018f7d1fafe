import { TrustedDocuments } from './trusted-documents';

export interface GraphqlApiConfig {
  /** GraphiQL at GET /graphql (browsers) and /explorer; off in production unless EARSHOT_EXPLORER=on */
  readonly explorer: boolean;
  /** origins allowed to call /graphql from a browser; `*` any; empty: no CORS headers at all */
  readonly corsOrigins: readonly string[];
  /** events waiting to be written to one WebSocket before the connection is closed as too slow */
  readonly subscriptionQueueLimit: number;
  /** bytes buffered in one socket's kernel/user send buffer above which events wait in the queue */
  readonly subscriptionMaxBufferedBytes: number;
  /** a JSON manifest of persisted operations; with `trustedDocuments = 'only'`, nothing else runs */
  readonly persistedOperationsFile: string | null;
  /** off: any document; allow: persisted ids and free documents; only: persisted ids only */
  readonly trustedDocuments: 'off' | 'allow' | 'only';
  /** serve /graphql as an Apollo Federation 2 subgraph (adds _service and _entities) */
  readonly federation: boolean;
}

/** Parses the GraphQL API's variables, adding to `problems` rather than throwing. */
export function parseGraphqlConfig(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  nodeEnv: string,
  problems: string[],
  /** the api role is on: only it reads the manifest */
  apiRole: boolean,
): GraphqlApiConfig {
  const explorerRaw = str('EARSHOT_EXPLORER');
  if (explorerRaw !== null && !['on', 'off'].includes(explorerRaw)) problems.push(`EARSHOT_EXPLORER=${JSON.stringify(explorerRaw)}: expected on or off`);
  const explorer = explorerRaw === null ? nodeEnv !== 'production' : explorerRaw === 'on';

  const corsOrigins: string[] = [];
  for (const o of (str('EARSHOT_CORS_ORIGINS') ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (o === '*') {
      corsOrigins.push(o);
      continue;
    }
    try {
      const u = new URL(o);
      // an origin is scheme://host[:port], nothing more: a path would never match a browser's Origin header
      if (!['http:', 'https:'].includes(u.protocol) || u.origin !== o.replace(/\/$/, '')) throw new Error();
      corsOrigins.push(u.origin);
    } catch {
      problems.push(`EARSHOT_CORS_ORIGINS: ${JSON.stringify(o)} is not an origin (scheme://host[:port]) or *`);
    }
  }

  const trusted = str('EARSHOT_TRUSTED_DOCUMENTS') ?? 'off';
  if (!['off', 'allow', 'only'].includes(trusted)) problems.push(`EARSHOT_TRUSTED_DOCUMENTS=${JSON.stringify(trusted)}: expected off, allow or only`);
  const persistedOperationsFile = str('EARSHOT_PERSISTED_OPERATIONS');
  if (trusted !== 'off' && persistedOperationsFile === null) problems.push(`EARSHOT_TRUSTED_DOCUMENTS=${trusted} needs EARSHOT_PERSISTED_OPERATIONS (a manifest file)`);
  // a manifest with the mode left off was read by nothing: an operator who meant "only these
  // documents" ran every document without a word
  if (trusted === 'off' && persistedOperationsFile !== null && str('EARSHOT_TRUSTED_DOCUMENTS') === null) {
    problems.push('EARSHOT_PERSISTED_OPERATIONS is set but EARSHOT_TRUSTED_DOCUMENTS is not: set it to only (run nothing else) or allow (run the rest too), or unset the manifest');
  }

  // read and checked here, before anything starts: a missing or malformed manifest was a stack
  // trace from the API's start, after the background jobs had started, and the process stayed
  if (apiRole && (trusted === 'allow' || trusted === 'only') && persistedOperationsFile !== null) {
    try {
      new TrustedDocuments(trusted, persistedOperationsFile);
    } catch (e) {
      problems.push(`EARSHOT_PERSISTED_OPERATIONS: ${(e as Error).message}`);
    }
  }

  const federationRaw = str('EARSHOT_FEDERATION');
  if (federationRaw !== null && !['on', 'off'].includes(federationRaw)) problems.push(`EARSHOT_FEDERATION=${JSON.stringify(federationRaw)}: expected on or off`);
  return {
    federation: federationRaw === 'on',
    explorer,
    corsOrigins,
    subscriptionQueueLimit: int('EARSHOT_SUBSCRIPTION_QUEUE_LIMIT', 1000, 1, 1_000_000),
    subscriptionMaxBufferedBytes: int('EARSHOT_SUBSCRIPTION_MAX_BUFFERED_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    persistedOperationsFile,
    trustedDocuments: (['off', 'allow', 'only'].includes(trusted) ? trusted : 'off') as GraphqlApiConfig['trustedDocuments'],
  };
}
