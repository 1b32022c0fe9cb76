#!/usr/bin/env bash
# run.sh — CTest's check_it_pg_node: the npm PostgreSQL driver `pg` (installed by
# scripts/setup-npm.sh into tests/pg/node_modules, never at test time) drives a real
# `semstream serve --pg-port` that requires a password (SCRAM-SHA-256), through
# tests/pg/pg.test.mjs (node --test).
# Usage: tests/pg/run.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-$SRC/build}" && pwd)
if [ ! -f "$SRC/tests/pg/node_modules/pg/package.json" ]; then
  echo "check_it_pg_node: the npm package pg is not installed in tests/pg: run scripts/setup.sh" >&2
  exit 1
fi
command -v node >/dev/null || { echo "check_it_pg_node: node is not installed: run scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d /tmp/semstream-pg-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
( umask 077; echo "pg-node-token" >"$tmp/token"; echo "pg-node-reader" >"$tmp/ro" )
"$BIN/semstream" serve --db "$tmp/state.db" --port 0 --pg-port 0 --max-latency-ms 20 --threads 1 \
  --auth-token-file "$tmp/token" --read-only-token-file "$tmp/ro" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*PostgreSQL protocol on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log" | head -1)
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/serve.log" >&2; exit 1; fi
  sleep 0.05
done
[ -n "${port:-}" ] || { echo "check_it_pg_node: serve did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
export SS_PG_PORT=$port SS_PG_PASSWORD=pg-node-token SS_PG_RO_PASSWORD=pg-node-reader
cd "$SRC/tests/pg"
if ! node --test --test-reporter=spec pg.test.mjs; then
  echo "--- serve.log ---" >&2
  cat "$tmp/serve.log" >&2
  exit 1
fi
