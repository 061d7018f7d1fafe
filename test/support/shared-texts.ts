import fs from 'node:fs';
import path from 'node:path';

/**
 * Lines of the text files under ../shared/data (every `every`-th, in a fixed order), each cut to
 * `maxChars`: real posts, reviews and complaints in many languages, for specs that compare two
 * implementations of one rule.
 */
export function sharedTexts(opts: { every?: number; maxChars?: number } = {}): string[] {
  const every = opts.every ?? 1;
  const maxChars = opts.maxChars ?? Infinity;
  const out: string[] = [];
  let n = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(txt|csv|json|jsonl|md)$/.test(e.name)) for (const line of fs.readFileSync(p, 'utf8').split('\n')) if (line && n++ % every === 0) out.push(line.slice(0, maxChars));
    }
  };
  walk(path.resolve(process.cwd(), '../shared/data'));
  return out;
}
