import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Structure checks over the source tree, read with the TypeScript parser the build already uses.
const SRC = path.resolve(__dirname, '..');

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.spec.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

const parsed = new Map(sourceFiles().map((f) => [f, ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true)]));
const rel = (f: string) => path.relative(SRC, f).split(path.sep).join('/');

/** `x.query(...)` calls: TypeORM's untyped entry point (and the pg client's, in the few places that hold one). */
function queryCalls(sf: ts.SourceFile): number {
  let n = 0;
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'query') n++;
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return n;
}

/**
 * Files that still call `.query(` outside a repository, with how many calls; none of them runs a
 * statement a repository could own. The list may only shrink.
 */
const LEFT_TO_OWNERS: Record<string, number> = {
  // LISTEN on the live-events session (client), which reconnects on its own
  'graphql/live-events.ts': 1,
  // CREATE DATABASE while bootstrapping the embedded PostgreSQL, before any data source exists
  'db/embedded-postgres.ts': 1,
  // jsforce's SOQL queries against Salesforce, not SQL
  'crm/salesforce/salesforce.client.ts': 3,
};

describe('source structure', () => {
  it('runs SQL only in repositories (src/**/*.repository.ts through src/db/sql.ts), apart from the files listed as left to their owners', () => {
    const found: Record<string, number> = {};
    for (const [f, sf] of parsed) {
      const name = rel(f);
      if (name.endsWith('.repository.ts') || name === 'db/sql.ts') continue;
      const n = queryCalls(sf);
      if (n > 0) found[name] = n;
    }
    const over = Object.entries(found).filter(([f, n]) => n > (LEFT_TO_OWNERS[f] ?? 0));
    expect(over, 'SQL outside a repository: move it into the feature repository').toEqual([]);
  });

  it('has no import cycle between source files (type-only imports included)', () => {
    const graph = new Map<string, string[]>();
    for (const [f, sf] of parsed) {
      const deps: string[] = [];
      for (const st of sf.statements) {
        const spec = (ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) ? st.moduleSpecifier.text : null;
        if (!spec?.startsWith('.')) continue;
        const target = path.resolve(path.dirname(f), spec);
        const hit = [`${target}.ts`, path.join(target, 'index.ts')].find((c) => parsed.has(c));
        if (hit) deps.push(hit);
      }
      graph.set(f, deps);
    }
    // depth-first search; a file met again while still on the path closes a cycle
    const cycles: string[][] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map(rel));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
