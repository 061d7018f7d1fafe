import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import { CsvError, parse } from 'csv-parse';
import { AppError } from '../shared/app-error';
import { resolveBatch, type PersonRecord, type ResolveOptions } from './matcher';

// Header names are compared without case, spaces, dots or underscores, so `given_name`,
// `GivenName` and `Given Name` are one column. Febrl's names, Salesforce's and HubSpot's.
const COLUMN: Record<string, keyof PersonRecord | 'email' | 'phone' | 'street' | 'twitter' | 'ignore'> = {
  recid: 'id',
  id: 'id',
  hsobjectid: 'id',
  givenname: 'givenName',
  firstname: 'givenName',
  surname: 'surname',
  lastname: 'surname',
  streetnumber: 'streetNumber',
  address1: 'address1',
  address2: 'address2',
  address: 'street',
  mailingstreet: 'street',
  suburb: 'city',
  city: 'city',
  mailingcity: 'city',
  postcode: 'postcode',
  zip: 'postcode',
  mailingpostalcode: 'postcode',
  state: 'state',
  mailingstate: 'state',
  dateofbirth: 'dateOfBirth',
  birthdate: 'dateOfBirth',
  dateofbirthcustom: 'dateOfBirth',
  company: 'company',
  accountname: 'company',
  email: 'email',
  phone: 'phone',
  mobilephone: 'phone',
  twitterhandle: 'twitter',
  // A national identity number is exactly what a CRM never has; matching on it would make the
  // evaluation say nothing about real data.
  socsecid: 'ignore',
};

function columnKey(header: string): string {
  return header.toLowerCase().replace(/[\s._-]+/g, '');
}

/**
 * What a header names, undefined for a column Earshot does not read. Own keys only: `COLUMN[key]`
 * found Object.prototype's `constructor` for a "Constructor" column, and a file with no other
 * column passed the header check (every record alone, exit code 0).
 */
function columnOf(header: string): (typeof COLUMN)[string] | undefined {
  const key = columnKey(header);
  return Object.hasOwn(COLUMN, key) ? COLUMN[key] : undefined;
}

/**
 * Maps one CSV row (header → value) to a PersonRecord; unknown columns are ignored.
 *
 * Must stay true: `soc_sec_id` never reaches the matcher; a row without an id column gets
 * `row-<n>` (1-based data row).
 */
export function rowToPerson(row: Record<string, string | string[]>, rowNumber: number): PersonRecord {
  const r: PersonRecord & { emails: string[]; phones: string[]; handles: { network: string; handle: string }[] } = {
    id: '',
    emails: [],
    phones: [],
    handles: [],
  };
  // A header given twice (two Email columns) has its values in an array: both count.
  for (const [header, raw] of Object.entries(row).flatMap(([h, v]) => (Array.isArray(v) ? v.map((x) => [h, x] as const) : [[h, v] as const]))) {
    const value = (raw ?? '').trim();
    if (value.length === 0) continue;
    const target = columnOf(header);
    switch (target) {
      case undefined:
      case 'ignore':
        break;
      case 'email':
        r.emails.push(value);
        break;
      case 'phone':
        r.phones.push(value);
        break;
      case 'twitter':
        r.handles.push({ network: 'x', handle: value });
        break;
      case 'street': {
        // MailingStreet holds the number and up to three lines in one field.
        const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
        const first = /^(\d+[a-z]?)\s+(.+)$/i.exec(lines[0] ?? '');
        if (first) {
          r.streetNumber ??= first[1]!;
          r.address1 = first[2]!;
        } else {
          r.address1 = lines[0];
        }
        if (lines.length > 1) r.address2 = lines.slice(1).join(' ');
        break;
      }
      default:
        (r as unknown as Record<string, string>)[target] = value;
    }
  }
  if (!r.id) r.id = `row-${rowNumber}`;
  return r;
}

/** Longest CSV record read (characters, all fields together); a longer one is malformed input. */
export const MAX_CSV_RECORD_CHARS = 8 * 1024 * 1024;

/**
 * Reads person records from a CSV file with a header row. Febrl files separate values with
 * ", ", hence the trimming.
 */
export async function readPersonCsv(file: string): Promise<PersonRecord[]> {
  // max_record_size: a 100 MB field or /dev/zero was read on without end (memory grew until the
  // process died); now it is a malformed file (exit 2).
  const parser = parse({ columns: true, trim: true, skip_empty_lines: true, relax_column_count: true, bom: true, group_columns_by_name: true, max_record_size: MAX_CSV_RECORD_CHARS });
  // pipe() does not forward a read error: without this a missing file is an unhandled 'error' event.
  const source = createReadStream(file).on('error', (e) => parser.destroy(e));
  source.pipe(parser);
  const records: PersonRecord[] = [];
  let n = 0;
  try {
    const rowOfId = new Map<string, number>();
    for await (const row of parser as AsyncIterable<Record<string, string | string[]>>) {
      // A file without a header row, or one separated by ';' (Excel in many locales), was read
      // as columns nobody knows: every record alone in its cluster, exit code 0.
      if (n === 0 && !Object.keys(row).some((h) => columnOf(h) !== undefined && columnOf(h) !== 'ignore')) {
        throw AppError.badInput(`${file}: no column Earshot reads (Id, FirstName, LastName, Email, Phone, …) in the header row${Object.keys(row).some((h) => h.includes(';')) ? '; values must be separated by commas, not semicolons' : ''}`);
      }
      const person = rowToPerson(row, ++n);
      // resolveBatch throws on a repeated id: that was a stack trace and exit code 1.
      const earlier = rowOfId.get(person.id);
      if (earlier !== undefined) throw AppError.badInput(`${file}: data row ${n} repeats the id ${JSON.stringify(person.id)} of data row ${earlier}; ids must be unique`);
      rowOfId.set(person.id, n);
      records.push(person);
    }
  } catch (e) {
    throw inputError(file, e);
  } finally {
    source.destroy();
  }
  return records;
}

/** A missing, unreadable or malformed file is the user's to fix: one sentence, no stack. */
function inputError(file: string, e: unknown): unknown {
  const code = String((e as { code?: unknown }).code ?? '');
  if (code === 'ENOENT') return AppError.badInput(`${file}: no such file`);
  if (code === 'EACCES' || code === 'EPERM') return AppError.badInput(`${file}: permission denied`);
  if (code === 'EISDIR') return AppError.badInput(`${file}: is a folder, not a CSV file`);
  // every csv-parse error, not only the CSV_ codes: a quote opening inside a field is
  // INVALID_OPENING_QUOTE, which a binary or hand-edited file meets first; it went out as a
  // stack trace with exit code 1 and the file's bytes
  if (e instanceof CsvError || code.startsWith('CSV_')) return AppError.badInput(`${file} is not valid CSV: ${csvReason((e as Error).message)}`);
  // ENAMETOOLONG, ENOTDIR, ELOOP, EIO…: still the path the user gave, not a crash to report
  if (/^E[A-Z]+$/.test(code) && typeof (e as { syscall?: unknown }).syscall === 'string') return AppError.badInput(`${file}: cannot be read (${code})`);
  return e;
}

/** Longest quoted piece of the file kept in a CSV error: csv-parse quotes whole fields. */
const MAX_QUOTED_CHARS = 40;

/**
 * csv-parse's message with each quoted field (a JSON string, escapes included) cut to
 * MAX_QUOTED_CHARS, and no control characters: the file's content is echoed to a terminal.
 */
function csvReason(message: string): string {
  return message
    .replace(/"(?:[^"\\]|\\.)*"/g, (q) => (q.length > MAX_QUOTED_CHARS + 2 ? `${q.slice(0, MAX_QUOTED_CHARS + 1)}…"` : q))
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

export interface ResolveCommandOptions {
  /** Path of the CSV file. */
  input: string;
  output: NodeJS.WritableStream;
  autoLinkThreshold?: number;
  reviewThreshold?: number;
  /** Passed to resolveBatch (parameters, email and phone options…). */
  resolve?: ResolveOptions;
}

/**
 * `earshot resolve --input FILE.csv`: resolves the records of a CSV file and writes one JSON line
 * per record, in input order: `{"id", "cluster", "suggestedWith"}`.
 *
 * Must stay true: exactly one line per data row; `cluster` is the smallest record id of the
 * record's cluster (numeric-aware order), so it is stable under reordering of the input;
 * `suggestedWith` lists the records paired with this one in the review band.
 */
export async function runResolveCommand(opts: ResolveCommandOptions): Promise<{ records: number; clusters: number }> {
  const records = await readPersonCsv(opts.input);
  const result = resolveBatch(records, {
    ...opts.resolve,
    ...(opts.autoLinkThreshold != null ? { autoLinkThreshold: opts.autoLinkThreshold } : {}),
    ...(opts.reviewThreshold != null ? { reviewThreshold: opts.reviewThreshold } : {}),
  });
  const clusterOf = new Map<string, string>();
  for (const c of result.clusters) for (const id of c) clusterOf.set(id, c[0]!);
  const suggested = new Map<string, string[]>();
  for (const s of result.suggestions) {
    push(suggested, s.a, s.b);
    push(suggested, s.b, s.a);
  }
  for (const r of records) {
    const line = JSON.stringify({ id: r.id, cluster: clusterOf.get(r.id), suggestedWith: suggested.get(r.id) ?? [] }) + '\n';
    if (!opts.output.write(line)) await once(opts.output, 'drain');
  }
  return { records: records.length, clusters: result.clusters.length };
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
