import { randomUUID } from 'node:crypto';
import { csvValue, parseSoql, runSoql, SoqlError, type SoqlQuery } from './soql';
import { formatDateTime, to18, type SalesforceStore, type SfRecord } from './store';
import type { CrmResponse } from '../http-util';

type JobState = 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Aborted' | 'Failed';

interface QueryJob {
  id: string;
  operation: 'query' | 'queryAll';
  object: string;
  createdDate: number;
  state: JobState;
  apiVersion: number;
  lineEnding: 'LF' | 'CRLF';
  columnDelimiter: string;
  query: SoqlQuery;
  /** Snapshot taken when processing completes, as Salesforce does. */
  rows?: SfRecord[];
  checks: number;
}

const DELIMITERS: Record<string, string> = { COMMA: ',', BACKQUOTE: '`', CARET: '^', PIPE: '|', SEMICOLON: ';', TAB: '\t' };

const err = (status: number, errorCode: string, message: string): CrmResponse => ({ status, body: [{ errorCode, message }] });

/** Bulk API 2.0 query jobs: create, poll, page through CSV results with Sforce-Locator, abort, delete. */
export class Bulk2Jobs {
  private readonly jobs = new Map<string, QueryJob>();
  private counter = 0;

  constructor(
    private readonly store: SalesforceStore,
    private readonly opts: { checksUntilComplete: () => number; maxRecordsPerPage: () => number },
  ) {}

  create(body: Record<string, unknown>, version: string): CrmResponse {
    const operation = body.operation;
    if (operation !== 'query' && operation !== 'queryAll') {
      return err(400, 'INVALIDJOB', `Invalid job operation: ${String(operation)}`);
    }
    if (typeof body.query !== 'string') return err(400, 'INVALIDJOB', 'Query is required');
    const delimiter = (body.columnDelimiter as string | undefined) ?? 'COMMA';
    if (!DELIMITERS[delimiter]) return err(400, 'INVALIDJOB', `Invalid columnDelimiter: ${delimiter}`);
    let query: SoqlQuery;
    try {
      query = parseSoql(body.query);
    } catch (e) {
      if (e instanceof SoqlError) return err(400, e.errorCode, e.message);
      throw e;
    }
    if (query.count) return err(400, 'INVALIDJOB', 'Aggregate queries are not supported by Bulk API 2.0 query');
    const id = to18(`7505g${String(++this.counter).padStart(10, '0')}`);
    const job: QueryJob = {
      id, operation, object: query.type, createdDate: Date.now(), state: 'UploadComplete',
      apiVersion: Number(version), lineEnding: body.lineEnding === 'CRLF' ? 'CRLF' : 'LF', columnDelimiter: delimiter,
      query, checks: 0,
    };
    this.jobs.set(id, job);
    if (this.opts.checksUntilComplete() <= 0) this.complete(job);
    return { status: 200, body: this.info(job, false) };
  }

  get(id: string): CrmResponse {
    const job = this.jobs.get(id);
    if (!job) return notFound();
    if (job.state === 'UploadComplete' || job.state === 'InProgress') {
      job.checks++;
      job.state = 'InProgress';
      if (job.checks >= this.opts.checksUntilComplete()) this.complete(job);
    }
    return { status: 200, body: this.info(job, true) };
  }

  list(): CrmResponse {
    return { status: 200, body: { done: true, records: [...this.jobs.values()].map((j) => this.info(j, false)), nextRecordsUrl: null } };
  }

  abort(id: string, body: Record<string, unknown>): CrmResponse {
    const job = this.jobs.get(id);
    if (!job) return notFound();
    if (body.state !== 'Aborted') return err(400, 'INVALIDJOBSTATE', 'Only Aborted is a valid state for a query job');
    if (job.state === 'JobComplete' || job.state === 'Failed') return err(400, 'INVALIDJOBSTATE', 'Job is already complete');
    job.state = 'Aborted';
    return { status: 200, body: this.info(job, false) };
  }

  remove(id: string): CrmResponse {
    const job = this.jobs.get(id);
    if (!job) return notFound();
    if (job.state === 'UploadComplete' || job.state === 'InProgress') return err(400, 'INVALIDJOBSTATE', 'Job must be complete or aborted before it can be deleted');
    this.jobs.delete(id);
    return { status: 204 };
  }

  /** One page of CSV; the locator is the base64 of the next offset, or the string `null`. */
  results(id: string, locator: string | null, maxRecords: string | null): CrmResponse {
    const job = this.jobs.get(id);
    if (!job) return notFound();
    if (job.state !== 'JobComplete') return err(400, 'INVALIDJOBSTATE', `Job is in state ${job.state}; results are available only for JobComplete`);
    const rows = job.rows!;
    let offset = 0;
    if (locator) {
      offset = Number(Buffer.from(locator, 'base64').toString('utf8'));
      if (!Number.isInteger(offset) || offset < 0 || offset > rows.length) return err(400, 'INVALIDLOCATOR', 'Invalid locator');
    }
    const max = maxRecords ? Number(maxRecords) : this.opts.maxRecordsPerPage();
    if (!Number.isInteger(max) || max <= 0) return err(400, 'INVALIDMAXRECORDS', 'maxRecords must be a positive integer');
    const page = rows.slice(offset, offset + max);
    const next = offset + page.length;
    const d = DELIMITERS[job.columnDelimiter];
    const eol = job.lineEnding === 'CRLF' ? '\r\n' : '\n';
    const header = job.query.fields.map((f) => `"${f.parts.join('.')}"`).join(d);
    const lines = [header];
    for (const rec of page) lines.push(job.query.fields.map((f) => csvValue(this.store, job.object, rec, f.parts)).join(d));
    return {
      status: 200,
      headers: {
        'Content-Type': 'text/csv',
        'Sforce-NumberOfRecords': String(page.length),
        'Sforce-Locator': next < rows.length ? Buffer.from(String(next)).toString('base64') : 'null',
      },
      body: lines.join(eol) + eol,
    };
  }

  private complete(job: QueryJob): void {
    job.rows = runSoql(this.store, job.query, job.operation === 'queryAll');
    job.state = 'JobComplete';
  }

  private info(job: QueryJob, detailed: boolean): Record<string, unknown> {
    const base: Record<string, unknown> = {
      id: job.id,
      operation: job.operation,
      object: job.object,
      createdById: this.store.defaultUserId,
      createdDate: formatDateTime(job.createdDate),
      systemModstamp: formatDateTime(job.createdDate),
      state: job.state,
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: job.apiVersion,
      lineEnding: job.lineEnding,
      columnDelimiter: job.columnDelimiter,
    };
    if (!detailed) return base;
    return {
      ...base,
      jobType: 'V2Query',
      numberRecordsProcessed: job.rows?.length ?? 0,
      retries: 0,
      totalProcessingTime: job.rows ? 25 : 0,
      isPkChunkingSupported: true,
    };
  }
}

function notFound(): CrmResponse {
  return { status: 404, body: [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }] };
}

export const newCorrelationId = (): string => randomUUID();
