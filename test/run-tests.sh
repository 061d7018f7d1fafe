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

# System programs some tests drive (Debian's packages): Chromium for the browser tests, PgBouncer
# for the pooler test, openssl for the HTTPS proxy test. Installed here when missing and this is
# root on a machine with apt (a fresh machine); otherwise those tests say what to install.
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${CHROMIUM_PATH:-}" ] || missing+=(chromium)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing ${missing[*]} (Debian's packages)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } || echo "[test] could not install ${missing[*]}: the tests that need them will fail"
    systemctl disable --now pgbouncer >/dev/null 2>&1 || true
  else
    echo "[test] not installed: ${missing[*]} (apt-get install ${missing[*]}); the tests that need them will fail"
  fi
fi

echo "[test] compiling (tsc)"
npm run --silent build || exit 1

mkdir -p .cache
report="$PWD/.cache/vitest-report.json"
rm -f "$report"
# Test files, and the tests inside each file, run in a shuffled order: no test may depend on
# another having run first (each builds its own data). The seed is printed; to replay an order,
# `npm test -- --sequence.seed=N`.
seed_args=()
case " $* " in
  *" --sequence.seed"*) echo "[test] shuffle seed as given" ;;
  *)
    seed=$(( (RANDOM << 15) | RANDOM ))
    seed_args=("--sequence.seed=$seed")
    echo "[test] shuffle seed $seed (replay this order: npm test -- --sequence.seed=$seed)"
    ;;
esac
vitest run --config test/vitest.config.ts --sequence.shuffle "${seed_args[@]}" --reporter=default --reporter=json --outputFile.json="$report" "$@"
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
