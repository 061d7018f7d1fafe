#!/bin/sh
# Starts the service with its V8 flags (src/service-flags.ts, serviceNodeFlags): `npm start` and
# the container image run this. A process without the api role (EARSHOT_ROLES=ingest, say) also
# gets --single-threaded-gc. `exec`, so SIGTERM reaches node itself and the service drains.
# src/service-flags.spec.ts runs this script against the TypeScript rule.
flags="--no-memory-reducer"
# every blank out, as the config trims each role (an env file saved with CRLF ends in \r)
roles=$(printf '%s' "${EARSHOT_ROLES:-}" | tr -d '[:space:]')
case "$roles" in
  '' | api | api,* | *,api | *,api,*) ;;
  *) flags="$flags --single-threaded-gc" ;;
esac
# shellcheck disable=SC2086 # the flags are words
exec node $flags dist/src/main.js serve "$@"
