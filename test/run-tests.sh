#!/usr/bin/env bash
# The README's test command (`npm test`): builds, then runs every vitest project
# (unit, integration, e2e) against real PostgreSQL and a real Kafka broker, and ends
# with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/vitest ] || [ ! -x node_modules/.bin/node ]; then
  echo "[test] installing dependencies (npm ci)"
  npm ci --no-audit --no-fund || exit 1
fi
export PATH="$PWD/node_modules/.bin:$PATH"
echo "[test] node $(node --version)"

echo "[test] compiling (tsc)"
npm run --silent build || exit 1

mkdir -p .cache
report="$PWD/.cache/vitest-report.json"
rm -f "$report"
# Test files run in a shuffled order (a new seed each run; the seed is printed): no file may depend
# on another having run first. Tests inside a file keep their order: several files still tell one
# story in steps (load, then sync incrementally; first start, then restart), which a shuffle of
# tests breaks; making each of those tests build its own data is open work.
vitest run --config test/vitest.config.ts --sequence.shuffle.files --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?

if [ -f "$report" ]; then
  node -e '
    const r = require(process.argv[1]);
    const skipped = r.numPendingTests + r.numTodoTests;
    // a test file that cannot even load fails no test; count it, or the line would read green
    const brokenFiles = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.every((a) => a.status !== "failed")).length;
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed` + (skipped ? `, ${skipped} skipped` : ""));
    if (r.numTotalTests === 0) process.exit(1);
  ' "$report" || status=1
else
  echo "0 passed, 1 failed"
  status=1
fi
exit $status
