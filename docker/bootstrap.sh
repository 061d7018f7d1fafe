#!/usr/bin/env bash
# Makes a checkout runnable: installs the locked dependencies when they are missing or stale
# (Node.js 24 itself comes with them, as the `node` package), then compiles (tsc, and vite for
# the console).
# Used by `npm start` so that a fresh clone starts with one command.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json
if [ ! -x node_modules/.bin/node ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] \
   || [ -n "$(find patches -newer "$stamp" -print -quit)" ]; then
  echo "[earshot] installing dependencies (npm ci): first run only" >&2
  npm ci --no-audit --no-fund >&2
fi
export PATH="$PWD/node_modules/.bin:$PATH"
if [ ! -f dist/src/main.js ] || [ ! -f dist/console/index.html ] \
   || [ -n "$(find src migrations schema console -newer dist/src/main.js -print -quit)" ]; then
  echo "[earshot] compiling (tsc, and vite for the console)" >&2
  npm run --silent build >&2
fi
