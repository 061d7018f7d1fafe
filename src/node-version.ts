// Loaded first by main.ts, before any module that needs Node.js 24 (undici, the ESM-only
// packages): an older Node must get a sentence and the command that works, not a TypeError
// from deep inside a dependency. Plain code with no imports, so any Node that can parse the
// compiled file gets here.

/** Exit code when the Node.js running Earshot is too old (documented in the README). */
export const EXIT_UNSUPPORTED_NODE = 3;
export const REQUIRED_NODE_MAJOR = 24;

/** null when `version` (process.version, e.g. "v20.20.2") can run Earshot, else the message to print. */
export function unsupportedNodeMessage(version: string, execPath: string): string | null {
  const major = Number(/^v?(\d+)/.exec(version)?.[1] ?? 0);
  if (major >= REQUIRED_NODE_MAJOR) return null;
  return (
    `earshot: Node.js ${REQUIRED_NODE_MAJOR} or newer is required; this is Node.js ${version} (${execPath}).\n` +
    `The project brings Node.js ${REQUIRED_NODE_MAJOR} with its dependencies; from the checkout run\n` +
    `  npm start                    (installs, compiles and serves)\n` +
    `  npx earshot <command> ...    (any command, e.g. npx earshot analyze)\n` +
    `or put node_modules/.bin first on PATH, or install Node.js ${REQUIRED_NODE_MAJOR}.\n`
  );
}

const problem = unsupportedNodeMessage(process.version, process.execPath);
if (problem !== null) {
  // Synchronous: process.exit must not cut the message short on a pipe.
  require('node:fs').writeSync(2, problem);
  process.exit(EXIT_UNSUPPORTED_NODE);
}
