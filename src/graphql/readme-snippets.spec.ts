import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  getNamedType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  isUnionType,
  Kind,
  LoneAnonymousOperationRule,
  parse,
  specifiedRules,
  validate,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import { knownVariableNames, loadConfig, type Config } from '../config/config';
import { toSubgraphSchema } from './federation';
import { createSchema } from './schema';

/**
 * "Keep the README true": what a user copies from the README (GraphQL operations, field
 * selections, environment variables and their defaults, npm scripts, CLI commands and options,
 * file paths) is checked here against the schema, the config loader, package.json, the CLI's
 * command table and the tree. Each test lists what is false, so a failure names the README text.
 */
const ROOT = path.resolve(__dirname, '../..');
/** README_FILE: another copy to check (an older README, to see what this spec finds in it). */
const README = readFileSync(process.env.README_FILE ?? path.join(ROOT, 'README.md'), 'utf8');
const LINES = README.split('\n');

/** Fenced blocks (with their info string) and the text outside them. */
const FENCES = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
const PROSE = README.replace(/^```\w*\n[\s\S]*?^```/gm, '');
/**
 * Inline code spans of the prose, as CommonMark pairs them: a run of backticks closes at the
 * next run of the same length in the same paragraph (a table row is a paragraph of its own), so a
 * span may go on over a line break. Each comes with the line it starts on.
 */
const SPANS: { text: string; line: string }[] = PROSE.split(/\n\s*\n|\n(?=\|)|(?<=^\|.*)\n/m).flatMap((block) =>
  [...block.matchAll(/(?<!`)(`+)(?!`)([\s\S]*?[^`])\1(?!`)/g)].map((m) => ({
    text: m[2]!.replace(/\s*\n\s*/g, ' ').trim(),
    line: block.slice(block.lastIndexOf('\n', m.index) + 1).split('\n')[0]!,
  })),
);

/**
 * Placeholders a reader replaces (`"<Customer id>"`, `<uuid>`, `"…"`, a type name where a value
 * goes) become sample values, so that what is validated is the operation as the user types it.
 */
function fillPlaceholders(op: string): string {
  return op
    .replace(/"<[^">]*>"/g, '"00000000-0000-4000-8000-000000000000"')
    .replace(/<[\w -]+>/g, '"00000000-0000-4000-8000-000000000000"')
    .replace(/:\s*…/g, ': "x"')
    .replace(/:\s*DateTimeISO\b/g, ': "2026-11-01T00:00:00Z"')
    .replace(/:\s*(ID|String)\b(?!\s*[!\]])/g, ': "x"')
    .replace(/:\s*Int\b(?!\s*[!\]])/g, ': 1');
}

/** Several anonymous operations in one block are examples side by side, not one document. */
const RULES = specifiedRules.filter((r) => r !== LoneAnonymousOperationRule);

function check(schema: GraphQLSchema, op: string): string[] {
  try {
    return validate(schema, parse(fillPlaceholders(op)), RULES).map((e) => e.message);
  } catch (e) {
    return [(e as Error).message];
  }
}

/** Every GraphQL operation of the README, where it is. */
function operations(): { where: string; op: string }[] {
  const out: { where: string; op: string }[] = [];
  for (const f of FENCES) {
    if (f.lang === 'graphql') out.push({ where: 'graphql block', op: f.body });
    // curl -d '{"query":"…"}' in shell blocks
    for (const m of f.body.matchAll(/"query"\s*:\s*("(?:[^"\\]|\\.)*")/g)) out.push({ where: `${f.lang || 'plain'} block, JSON body`, op: JSON.parse(m[1]!) as string });
  }
  for (const s of SPANS) {
    // `{"json": …}`, `{}`, a bare `query` and a list of names `{ score, label, … }` are not operations
    if (/^(query|mutation|subscription)\b[^(]*\{/.test(s.text) || /^\{\s*[_A-Za-z]\w*(?!\w)(?!,)/.test(s.text)) out.push({ where: 'inline', op: s.text });
  }
  return out;
}

type Candidate = { type: GraphQLNamedType; field: GraphQLField<unknown, unknown> };

function fieldsOf(t: GraphQLNamedType): Record<string, GraphQLField<unknown, unknown>> {
  return isObjectType(t) || isInterfaceType(t) ? t.getFields() : {};
}

/** Names in `sel` missing on `t` (unions: on some member), recursively. */
function missing(schema: GraphQLSchema, t: GraphQLNamedType, sel: SelectionSetNode, at: string): string[] {
  const out: string[] = [];
  const members = isUnionType(t) ? t.getTypes() : [t];
  for (const s of sel.selections) {
    if (s.kind !== Kind.FIELD) continue;
    const name = s.name.value;
    if (name === '__typename') continue;
    const owner = members.find((m) => fieldsOf(m)[name]);
    if (!owner) {
      out.push(`${at}.${name}`);
      continue;
    }
    const f = fieldsOf(owner)[name]!;
    for (const a of s.arguments ?? []) if (!f.args.some((x) => x.name === a.name.value)) out.push(`${at}.${name}(${a.name.value}:)`);
    if (s.selectionSet) out.push(...missing(schema, getNamedType(f.type), s.selectionSet, `${at}.${name}`));
  }
  return out;
}

/**
 * Inline selections of one field (`retentionStatus { enabled days … }`, `rescoreJob(id) { … }`,
 * `Customer.crmRecords { … }`): the field must exist (on the named type, or on any type, the
 * root types first) with every argument and subfield named.
 */
function selectionProblems(schema: GraphQLSchema, text: string): string[] | null {
  const m = /^(?:([A-Z]\w*)\.)?([a-z_]\w*)(\([^()]*\))?\s*(\{[\s\S]*\})$/.exec(text);
  if (!m || m[2]!.startsWith('earshot_')) return null; // metric names with labels: earshot_x{topic}
  const [, typeName, name, args, selection] = m;
  let sel: SelectionSetNode;
  try {
    // `rescoreJob(id)`: argument names without values
    const a = args ? `(${args.slice(1, -1).split(',').map((x) => (x.includes(':') ? x : `${x.trim()}: "x"`)).join(',')})` : '';
    const doc = parse(`{ ${name}${fillPlaceholders(a)} ${selection} }`);
    sel = (doc.definitions[0] as { selectionSet: SelectionSetNode }).selectionSet;
  } catch {
    return null; // not GraphQL (a JSON shape, a metric)
  }
  const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].filter((t) => t) as GraphQLNamedType[];
  const types: GraphQLNamedType[] = typeName
    ? [schema.getType(typeName)].filter((t): t is GraphQLNamedType => !!t)
    : [...roots, ...Object.values(schema.getTypeMap()).filter((t) => !t.name.startsWith('__') && !roots.includes(t))];
  if (types.length === 0) return [`no type ${typeName}`];
  const holders: Candidate[] = types.filter((t) => fieldsOf(t)[name!]).map((t) => ({ type: t, field: fieldsOf(t)[name!]! }));
  if (holders.length === 0) return [`no field ${typeName ? `${typeName}.` : ''}${name}`];
  const tried = holders.map((h) => missing(schema, h.type, sel, h.type.name));
  return tried.some((p) => p.length === 0) ? [] : tried[0]!;
}

/**
 * Inline selections that are not of the schema, each with the reason: the README shows them as
 * what they are, and the test would otherwise read them as fields.
 */
const NOT_SCHEMA_SELECTIONS = new Map<string, string>([
  ['details { argument rule }', 'the extensions of a BAD_USER_INPUT error, not a field'],
]);
/** `Type.field` spans that name another schema than Earshot's, with the reason. */
const NOT_SCHEMA_FIELDS = new Map<string, string>([
  ['Customer.interactionsByCustomerId', "PostGraphile's field, in the comparison benchmark"],
]);

describe('the README, checked against the code', () => {
  let schema: GraphQLSchema;
  /** with EARSHOT_FEDERATION=on (`_service`, `_entities`) */
  let subgraph: GraphQLSchema;
  beforeAll(async () => {
    schema = await createSchema();
    subgraph = toSubgraphSchema(schema);
  });

  it('finds the GraphQL it is to check', () => {
    const ops = operations();
    expect(ops.filter((o) => o.where === 'graphql block').length).toBeGreaterThanOrEqual(2);
    expect(ops.filter((o) => o.where === 'inline').length).toBeGreaterThanOrEqual(3);
    expect(ops.some((o) => o.where.includes('JSON body'))).toBe(true);
  });

  it('every GraphQL operation it shows validates against the schema', () => {
    const bad = operations().flatMap((o) => check(schema, o.op).map((e) => `${o.where}: ${o.op.slice(0, 80).replace(/\s+/g, ' ')} → ${e}`));
    expect(bad).toEqual([]);
  });

  it('every field selection it shows inline names fields the schema has', () => {
    const seen: string[] = [];
    const bad: string[] = [];
    for (const s of SPANS) {
      if (/^(query|mutation|subscription)\b/.test(s.text)) continue; // whole operations: above
      if (NOT_SCHEMA_SELECTIONS.has(s.text)) continue;
      const p = selectionProblems(schema, s.text);
      if (p === null) continue;
      seen.push(s.text);
      if (p.length > 0 && selectionProblems(subgraph, s.text)?.length === 0) continue;
      for (const x of p) bad.push(`\`${s.text}\` → ${x}`);
    }
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(bad).toEqual([]);
  });

  it('every root field it calls with arguments takes those arguments', () => {
    // `customerDataExport(id: …)`, `analyzeText(text, lang)`, `triggerCrmSync(system, mode: INCREMENTAL|FULL)`:
    // a field of Query/Mutation/Subscription and the names of its arguments
    const roots = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!].filter(Boolean);
    const bad: string[] = [];
    let seen = 0;
    for (const s of SPANS) {
      const m = /^(?:(?:query|mutation|subscription)\s*\{\s*)?([a-z]\w*)\(([^()]*)\)/.exec(s.text);
      if (!m) continue;
      const holder = roots.find((r) => r.getFields()[m[1]!]);
      if (!holder) continue; // a function of the code, not a field
      seen++;
      const f = holder.getFields()[m[1]!]!;
      // the argument names: before a `:`, or alone; commas inside `{ … }` values do not split
      let depth = 0;
      const parts = [''];
      for (const c of m[2]!) {
        depth += c === '{' || c === '[' ? 1 : c === '}' || c === ']' ? -1 : 0;
        if (c === ',' && depth === 0) parts.push('');
        else parts[parts.length - 1] += c;
      }
      for (const part of parts) {
        const a = /^\s*([a-zA-Z_]\w*)\s*(?::|$)/.exec(part);
        if (a && !f.args.some((x) => x.name === a[1])) bad.push(`\`${s.text}\` → ${holder.name}.${m[1]} has no argument ${a[1]}`);
      }
    }
    expect(seen).toBeGreaterThanOrEqual(10);
    expect(bad).toEqual([]);
  });

  it('every call it shows, `name(…)`, is a field of the schema or a function of the code', () => {
    // a root field renamed (`listeningItems(…)` → …) would otherwise be taken for a code function and pass
    const fields = new Set(Object.values(schema.getTypeMap()).flatMap((t) => Object.keys(fieldsOf(t))));
    const code = ['src', 'test', 'console']
      .flatMap((d) => readdirSync(path.join(ROOT, d), { recursive: true, encoding: 'utf8' }).filter((f) => /\.(ts|tsx|mts|mjs|js|css)$/.test(f) && !f.includes('node_modules')).map((f) => path.join(ROOT, d, f)))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const bad = new Set<string>();
    for (const s of SPANS) {
      const m = /^([a-z]\w*)\(/.exec(s.text);
      if (m && !fields.has(m[1]!) && !new RegExp(`\\b${m[1]}\\b`).test(code)) bad.add(`\`${s.text}\``);
    }
    expect([...bad]).toEqual([]);
  });

  it('the fields it lists for analyzeText are the fields of its result', () => {
    // `analyzeText(text, lang)` and `earshot analyze` expose the same analyzer: `{ score, label, … }`
    const s = SPANS.find((x) => x.text.startsWith('{ score,'))!;
    expect(s).toBeDefined();
    const listed = s.text.replace(/[{}]/g, '').split(',').map((x) => x.trim());
    const result = getNamedType(schema.getQueryType()!.getFields().analyzeText!.type);
    expect(listed.filter((f) => !fieldsOf(result)[f])).toEqual([]);
    expect(Object.keys(fieldsOf(result)).filter((f) => !listed.includes(f))).toEqual([]);
  });

  it('every Type.field it names exists in the schema', () => {
    const bad: string[] = [];
    for (const s of SPANS) {
      const m = /^([A-Z]\w*)\.([a-z_]\w*)\b/.exec(s.text);
      if (!m || NOT_SCHEMA_FIELDS.has(`${m[1]}.${m[2]}`)) continue;
      const t = schema.getType(m[1]!);
      if (!t || !(isObjectType(t) || isInterfaceType(t) || isInputObjectType(t))) continue; // not a schema type (a JS class)
      if (!t.getFields()[m[2]!]) bad.push(`\`${s.text}\` → ${m[1]} has no field ${m[2]}`);
    }
    expect(bad).toEqual([]);
  });
});

/* ------------------------------------------------------------------ environment variables */

/** The source files of a folder, specs left out. */
function srcFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'))
    .map((f) => path.join(ROOT, dir, f));
}

const ENV_NAME = /\b(?:EARSHOT|KAFKA|DATABASE|OTEL|BENCH)_[A-Z0-9_]*[A-Z0-9]\b|\b(?:HTTPS?_PROXY|NO_PROXY|NODE_USE_ENV_PROXY)\b|(?<=`)(?:PORT|HOST|LOG_LEVEL|NODE_ENV)(?=[`=\s])/g;
/** README names that are no variable of Earshot's code, each with the reason. */
const NOT_EARSHOT_VARIABLES = new Map<string, string>([
  ['EARSHOT_ROLE', 'the README\'s example of a typo Earshot warns about'],
  ['KAFKA_BROKER', 'the README\'s example of a typo Earshot names'],
  ['DATABASE_UR', 'the README\'s example of a typo Earshot names'],
  ['NODE_USE_ENV_PROXY', 'Node\'s own variable, named as the behaviour Earshot\'s proxy handling follows'],
  ['EARSHOT_SERVICE_HOST', 'set by Kubernetes for a Service named earshot: the README says it is not warned about'],
  ['EARSHOT_PORT_4000_TCP_ADDR', 'set by Kubernetes for a Service named earshot: the README says it is not warned about'],
]);
/** Variables the code reads for its tests, benchmarks and compose file only: not an operator's. */
const TEST_ONLY = /^EARSHOT_(TEST_|SHARED_DATA$|PORT$)/;

/** Names in the README: full names, and `_SUFFIX` shorthands expanded from the name before them on the line. */
function readmeVariables(): { name: string; candidates: string[]; line: string }[] {
  const out: { name: string; candidates: string[]; line: string }[] = [];
  for (const line of LINES) {
    let last: string | null = null;
    for (const m of line.matchAll(new RegExp(`${ENV_NAME.source}|(?<=\`)_[A-Z][A-Z0-9_]*[A-Z0-9](?=\`)`, 'g'))) {
      const n = m[0];
      if (line[m.index! + n.length] === '*' || line[m.index! + n.length] === '_') continue; // a prefix: EARSHOT_GRAPHQL_*, EARSHOT_SF_…
      if (n.startsWith('_')) {
        if (!last) continue;
        const parts = last.split('_');
        const candidates = [1, 2, 3].map((k) => parts.slice(0, -k).join('_') + n).filter((c) => c.split('_').length > 1);
        out.push({ name: `${last} / ${n}`, candidates, line });
        continue;
      }
      last = n;
      out.push({ name: n, candidates: [n], line });
    }
  }
  return out;
}

/**
 * What the code reads: loadConfig with an empty environment and the names it knows are read
 * under conditions (knownVariableNames), `env.X` and quoted names in src/ and the benchmarks,
 * evaluations and test support, `$X` in docker/*.sh.
 */
function codeVariables(): Set<string> {
  const names = knownVariableNames();
  const read = new Set<string>();
  loadConfig({}, read);
  for (const n of read) names.add(n);
  for (const f of ['src', 'test/bench', 'test/eval', 'test/support'].flatMap(srcFiles)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:process\.)?env(?:\.|\[['"`])([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
    for (const m of text.matchAll(/['"`]((?:EARSHOT|KAFKA|DATABASE|OTEL|BENCH)_[A-Z0-9_]*[A-Z0-9]|HTTPS?_PROXY|NO_PROXY)['"`]/g)) names.add(m[1]!);
  }
  // docker/kafka.sh, docker/serve.sh, …: `${KAFKA_PORT:-9092}`, `$EARSHOT_ROLES`
  for (const f of readdirSync(path.join(ROOT, 'docker'), { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.sh'))) {
    const text = readFileSync(path.join(ROOT, 'docker', f), 'utf8');
    for (const m of text.matchAll(/\$\{?([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
  }
  return names;
}

describe('the README’s environment variables', () => {
  const code = codeVariables();

  it('each variable it names is one the code reads', () => {
    const bad = readmeVariables()
      .filter((v) => !v.candidates.some((c) => code.has(c) || NOT_EARSHOT_VARIABLES.has(c)))
      .map((v) => `${v.name} (in: ${v.line.trim().slice(0, 100)})`);
    expect([...new Set(bad)]).toEqual([]);
  });

  it('each variable the code reads is documented', () => {
    const documented = new Set(readmeVariables().flatMap((v) => v.candidates));
    const bad = [...code]
      .filter((n) => /^(EARSHOT|KAFKA|DATABASE)_/.test(n) || ['PORT', 'HOST', 'LOG_LEVEL', 'NODE_ENV', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY'].includes(n))
      .filter((n) => !TEST_ONLY.test(n) && !documented.has(n))
      .sort();
    expect(bad).toEqual([]);
  });

  /**
   * Setting a variable to its documented default must change nothing: the same configuration,
   * and no refusal. `env` is what else is set (production, a CRM: settings read only then).
   */
  function defaultProblem(name: string, value: string, env: Record<string, string>): string | null {
    const strip = (c: Config) => JSON.stringify({ ...c, warnings: [] });
    try {
      if (strip(loadConfig({ ...env, [name]: value })) !== strip(loadConfig(env))) return `${name}: README says \`${value}\`${env.NODE_ENV ? ' in production' : ''}, but setting it changes the configuration`;
    } catch (e) {
      return `${name}: README says \`${value}\`, refused: ${(e as Error).message.split('\n')[0]}`;
    }
    return null;
  }
  const PRODUCTION = { NODE_ENV: 'production', EARSHOT_API_KEYS: 'k-0123456789abcdef:admin' };
  /** Salesforce and HubSpot configured: their other settings are read only then. */
  const CRM = { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: 'p', EARSHOT_HUBSPOT_TOKEN: 't' };

  it('each default its tables give is the value the code takes when the variable is unset', () => {
    // Rows whose default is a formula or prose (`unset`, `$PORT`, `KAFKA_CONSUMER_CONCURRENCY` + …) are skipped.
    const bad: string[] = [];
    let checked = 0;
    let production = false;
    for (const line of LINES) {
      const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
      if (cells[1] === 'variable') production = /production/.test(cells[2] ?? '');
      if (cells.length < 4 || !/^`[A-Z]/.test(cells[1]!)) continue;
      const names = [...cells[1]!.matchAll(/`([A-Z_][A-Z0-9_]*)`/g)].map((m) => m[1]!);
      if (!/^`/.test(cells[2]!) || names.length !== cells[1]!.split('/').length) continue;
      // `A` / `_B` / `_C`: the suffixes take the name of the first
      const full = names.map((n) => (n.startsWith('_') ? [1, 2, 3].map((k) => names[0]!.split('_').slice(0, -k).join('_') + n).find((c) => code.has(c)) ?? n : n));
      const values = full.length === 1 ? [cells[2]!] : cells[2]!.split(/\s\/\s/);
      for (const [i, name] of full.entries()) {
        // `false` (`true`): in production, and elsewhere
        const m = /^`([^`]*)`(?:\s*\(`([^`]*)`\))?/.exec(values[i]?.trim() ?? '');
        if (!m || /[$<]|^[A-Z_]+$/.test(m[1]!)) continue;
        checked++;
        const p = defaultProblem(name, m[1]!, production ? PRODUCTION : {});
        if (p) bad.push(p);
        if (production && m[2] !== undefined) {
          const q = defaultProblem(name, m[2], {});
          if (q) bad.push(q);
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(60);
    expect(bad).toEqual([]);
  });

  it('each default it gives in prose, `NAME` (value), is the value the code takes', () => {
    // `EARSHOT_SF_API_VERSION` (62.0), `EARSHOT_CRM_REQUEST_TIMEOUT_MS` (120000: one call, …)
    const inEmpty = new Set<string>();
    loadConfig({}, inEmpty);
    const inCrm = new Set<string>();
    loadConfig(CRM, inCrm);
    const bad: string[] = [];
    let checked = 0;
    // not in tables (checked above), and a value alone in its parentheses or before `:`, `;`, `, `
    const prose = PROSE.split('\n').filter((l) => !l.startsWith('|')).join(' ').replace(/\s+/g, ' ');
    const found = [
      ...prose.matchAll(/`([A-Z][A-Z0-9_]+)` \((?:`([^`]+)`\)|([^\s`()]+?)(?=\)|[:;] |, ))/g),
      // `NAME` (default `v`), `NAME`, default `v`
      ...prose.matchAll(/`([A-Z][A-Z0-9_]+)`(?: \(|,? )default `([^`]+)`()/g),
    ];
    for (const m of found) {
      const name = m[1]!;
      const value = m[2] || (/^\d{1,3}(,\d{3})+$/.test(m[3]!) ? m[3]!.replace(/,/g, '') : m[3]!);
      const env = inEmpty.has(name) ? {} : inCrm.has(name) ? CRM : null;
      if (/…|^(unset|empty|none)$/.test(value)) continue; // a form (`host:port,…`) or a word
      // a number's variable next to a code or a word (`…_TIMEOUT_MS` (55P03)) is no default
      if (!env || (/_(MS|BYTES|SECONDS|HOURS|DAYS|SIZE|THRESHOLD|CONNECTIONS|LANES|RETRIES|BUDGET|10S)$/.test(name) && !/^\d+$/.test(value))) continue;
      checked++;
      const p = defaultProblem(name, value, env);
      if (p) bad.push(p);
    }
    expect(checked).toBeGreaterThanOrEqual(20);
    expect(bad).toEqual([]);
  });
});

/* ------------------------------------------------------------------ npm scripts and the CLI */

const MAIN = readFileSync(path.join(ROOT, 'src/main.ts'), 'utf8');
const COMMANDS = new Set(JSON.parse(/const COMMANDS = new Set\((\[[^\]]*\])\)/.exec(MAIN)![1]!.replace(/'/g, '"')) as string[]);
const OPTIONS_OF: Record<string, string[]> = Object.fromEntries(
  [.../const OPTIONS_OF[^=]*= \{([\s\S]*?)\n\};/.exec(MAIN)![1]!.matchAll(/'?([\w-]+)'?: \[([^\]]*)\]/g)].map((m) => [m[1]!, [...m[2]!.matchAll(/'([\w-]+)'/g)].map((x) => x[1]!)]),
);

/** Commands the README shows as user mistakes the CLI refuses, each with the reason. */
const SHOWN_AS_MISTAKES = new Map<string, string>([['earshot --input x.csv', 'an option of another command, refused with exit 2']]);

/** Code spans and code-block lines: where a user copies a command from. */
const CODE_TEXT: string[] = [...SPANS.map((s) => s.text), ...FENCES.filter((f) => f.lang !== 'graphql').flatMap((f) => f.body.split('\n'))];

describe('the README’s commands', () => {
  it('every `npm run X` is a script of package.json', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const named = [...README.matchAll(/npm run(?: --silent)?\s+([\w:.-]+)/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(5);
    expect([...new Set(named.filter((n) => !(n in scripts)))]).toEqual([]);
  });

  it('every earshot command and option is one the CLI accepts', () => {
    expect(COMMANDS.size).toBeGreaterThan(5);
    expect(Object.keys(OPTIONS_OF).sort()).toEqual([...COMMANDS].sort());
    const bad: string[] = [];
    let seen = 0;
    for (const text of CODE_TEXT.filter((t) => !SHOWN_AS_MISTAKES.has(t.trim()))) {
      const uses: { cmd: string; rest: string }[] = [];
      for (const m of text.matchAll(/(?:\bearshot|dist\/src\/main\.js)[ \t]+(--[\w-]+|[^\s`]+)(.*)/g)) {
        if (/^[<…]/.test(m[1]!)) continue; // `earshot <command>`
        uses.push(m[1]!.startsWith('--') ? { cmd: 'serve', rest: `${m[1]} ${m[2]}` } : { cmd: m[1]!, rest: m[2]! });
      }
      for (const m of text.matchAll(/npm start -- (.*)/g)) uses.push({ cmd: 'serve', rest: m[1]! });
      // a bare `demo --load-only`, `migrate --revert`
      const bare = /^([a-z][\w-]*) (--.*)/.exec(text.trim());
      if (bare && COMMANDS.has(bare[1]!)) uses.push({ cmd: bare[1]!, rest: bare[2]! });
      for (const u of uses) {
        const where = `\`${text.trim().slice(0, 80)}\``;
        if (!COMMANDS.has(u.cmd)) {
          bad.push(`${where}: no command ${u.cmd}`);
          continue;
        }
        seen++;
        const rest = u.rest.split(/(?<!\\)\||&&|;|#/)[0]!; // up to a pipe (not a table's \|), && or a comment
        for (const o of rest.matchAll(/(?:^|\s)--([\w-]+)/g)) if (o[1] !== 'help' && !OPTIONS_OF[u.cmd]!.includes(o[1]!)) bad.push(`${where}: ${u.cmd} takes no --${o[1]}`);
      }
    }
    expect(seen).toBeGreaterThan(5);
    expect([...new Set(bad)]).toEqual([]);
  });

  it('documents every command and option of the CLI', () => {
    const bad: string[] = [];
    for (const c of COMMANDS) if (!CODE_TEXT.some((t) => new RegExp(`(^|earshot |main\\.js )${c}\\b`).test(t.trim()))) bad.push(c);
    for (const [c, opts] of Object.entries(OPTIONS_OF)) for (const o of opts) if (!README.includes(`--${o}`)) bad.push(`${c} --${o}`);
    expect(bad).toEqual([]);
  });
});

/* ------------------------------------------------------------------ file paths */

const PATH_ROOTS = /^(?:src|test|docs|schema|models|migrations|docker|console|patches|\.ci)\//;

function exists(p: string): boolean {
  if (!/[*<]/.test(p)) return existsSync(path.join(ROOT, p));
  // `models/<model>.bin.gz`, `src/**/*.ts`, `src/<feature>/<feature>.repository.ts`: some file matches
  const dir = p.slice(0, p.search(/[*<]/)).replace(/[^/]*$/, '');
  if (!existsSync(path.join(ROOT, dir))) return false;
  const glob = p.slice(dir.length).replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^${glob.replace(/\*\*\//g, '(?:.*/)?').replace(/\*/g, '[^/]*').replace(/<[^>]*>/g, '[^/]+')}$`);
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).some((f) => re.test(f));
}

/** Test and spec files anywhere in the tree, by file name. */
const TEST_FILES = new Set(
  ['src', 'test', 'console'].flatMap((d) => readdirSync(path.join(ROOT, d), { recursive: true, encoding: 'utf8' }).filter((f) => !f.includes('node_modules')).map((f) => path.basename(f))),
);

describe('the README’s file paths', () => {
  it('every path it names exists', () => {
    const paths = new Set<string>();
    for (const s of SPANS) {
      for (const word of s.text.split(/\s+/)) {
        const p = word.replace(/[),.;:]+$/, '').replace(/:\d+(-\d+)?$/, '').replace(/#.*$/, '');
        if (PATH_ROOTS.test(p)) paths.add(p);
      }
    }
    expect(paths.size).toBeGreaterThan(50);
    expect([...paths].filter((p) => !exists(p))).toEqual([]);
  });

  it('every test file it names by its name alone exists', () => {
    const names = new Set(SPANS.map((s) => s.text).filter((t) => /^[\w.-]+\.(test|spec)\.tsx?$/.test(t)));
    expect([...names].filter((n) => !TEST_FILES.has(n))).toEqual([]);
  });

  it('every test named in "Guarantees at a glance" exists', () => {
    const start = LINES.findIndex((l) => l.startsWith('## Guarantees at a glance'));
    const end = LINES.findIndex((l, i) => i > start && l.startsWith('## '));
    const named: string[] = [];
    for (const line of LINES.slice(start, end).filter((l) => l.startsWith('| ') && !l.startsWith('| promise') && !l.startsWith('| ---'))) {
      const cell = line.split('|').at(-2)!;
      for (const m of cell.matchAll(/`([^`]+)`/g)) {
        const t = m[1]!;
        if (t.startsWith('npm run') || t.startsWith('node ')) continue; // commands: checked above
        named.push(PATH_ROOTS.test(t) ? t : `test/integration/${t}.test.ts`);
      }
    }
    expect(named.length).toBeGreaterThan(50);
    expect(named.filter((p) => !existsSync(path.join(ROOT, p)))).toEqual([]);
  });
});
