import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Apollo's persisted query manifest (what @apollo/generate-persisted-query-manifest writes). */
interface Manifest {
  format: 'apollo-persisted-query-manifest';
  version: 1;
  operations: { id: string; name?: string; type?: string; body: string }[];
}

export type TrustedMode = 'off' | 'allow' | 'only';

export interface TrustedCheck {
  /** the request's params, with `query` filled in from the manifest when only its id was sent */
  params?: Record<string, unknown>;
  error?: { status: number; code: string; message: string };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Trusted documents: a manifest of the operations the company's own clients send, by sha256 of
 * their text. In `allow` mode a client may send just the id (as an APQ `persistedQuery` extension)
 * and free documents still run; in `only` mode (production) nothing else runs.
 *
 * What must stay true: in `only` mode a document runs only when its exact text is in the manifest,
 * whether it arrives as text, as an id, or registered through APQ.
 */
export class TrustedDocuments {
  private readonly byId = new Map<string, string>();

  constructor(
    readonly mode: TrustedMode,
    manifestFile: string | null,
  ) {
    if (mode === 'off' || !manifestFile) return;
    let manifest: Manifest | null;
    try {
      manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest | null;
    } catch (e) {
      throw new Error(`cannot read ${manifestFile}: ${(e as Error).message}`);
    }
    if (manifest?.format !== 'apollo-persisted-query-manifest' || manifest.version !== 1 || !Array.isArray(manifest.operations)) {
      throw new Error(`${manifestFile} is not an apollo-persisted-query-manifest version 1`);
    }
    for (const op of manifest.operations) {
      if (typeof op?.body !== 'string' || sha256(op.body) !== op.id) throw new Error(`${manifestFile}: operation ${op?.name ?? op?.id} has an id that is not the sha256 of its body`);
      this.byId.set(op.id, op.body);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /** Checks (and completes) one GraphQL-over-HTTP request's params. */
  check(params: Record<string, unknown>): TrustedCheck {
    if (this.mode === 'off') return { params };
    const ext = params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined;
    const id = typeof ext?.persistedQuery?.sha256Hash === 'string' ? ext.persistedQuery.sha256Hash : null;
    let query = typeof params.query === 'string' && params.query !== '' ? params.query : null;
    if (query === null && id !== null && this.byId.has(id)) query = this.byId.get(id)!;
    if (this.mode === 'only') {
      if (query === null) return { error: { status: 400, code: 'PERSISTED_QUERY_NOT_FOUND', message: 'this server runs only operations of its trusted-documents manifest; this id is not one of them' } };
      if (!this.byId.has(sha256(query))) return { error: { status: 400, code: 'PERSISTED_QUERY_NOT_IN_LIST', message: 'this server runs only operations of its trusted-documents manifest; this document is not one of them' } };
    }
    return { params: query === null ? params : { ...params, query } };
  }
}
