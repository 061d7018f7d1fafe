import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { EXPLORER_EXAMPLES } from './explorer-examples';
import { createSchema } from './schema';

describe('the explorer saved examples', () => {
  it('each validates against the schema', async () => {
    const schema = await createSchema();
    for (const e of EXPLORER_EXAMPLES) expect(validate(schema, parse(e.query)).map((x) => x.message), e.title).toEqual([]);
  });

  it('cover every top-level field the README shows in its example queries', () => {
    const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const fields = new Set<string>();
    for (const b of blocks) for (const m of b.matchAll(/^\{ ?(\w+)\(/gm)) fields.add(m[1]!);
    const saved = EXPLORER_EXAMPLES.map((e) => e.query).join('\n');
    for (const f of fields) expect(saved, f).toContain(`${f}(`);
  });
});
