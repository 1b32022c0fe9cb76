#!/usr/bin/env bash
# run.sh — CTest's check_it_console: the web console end to end in headless Chromium
# (Debian's chromium and chromium-driver, installed by scripts/setup.sh), driven over
# WebDriver by tests/console/console.test.mjs (node's own fetch; no npm package): load the
# page, create a stream and a semantic view in the SQL box, insert rows, see them appear in
# the live SUBSCRIBE table, the views table, the operator DAG and the calls chart; delete
# one and see it go. Screenshots are kept in BUILD_DIR/console-screenshots/ (and copied to
# docs/ with SS_UPDATE_DOCS=1).
# Usage: tests/console/run.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-$SRC/build}" && pwd)
for b in chromium chromedriver node; do
  command -v "$b" >/dev/null || { echo "check_it_console: $b is not installed: run scripts/setup.sh" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/semstream-console-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
"$BIN/semstream" serve --db "$tmp/state.db" --port 0 --max-latency-ms 20 --threads 1 >"$tmp/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*SQL over HTTP on http:\/\/127.0.0.1:\([0-9]*\)\/sql.*/\1/p' "$tmp/serve.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "${port:-}" ] || { echo "check_it_console: serve did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
# chromedriver on a free port
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chromedriver --port="$dport" >"$tmp/chromedriver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  curl -s "http://127.0.0.1:$dport/status" | grep -q '"ready":true' && break
  sleep 0.05
done
mkdir -p "$BIN/console-screenshots"
export SS_CONSOLE_URL="http://127.0.0.1:$port/" SS_WEBDRIVER="http://127.0.0.1:$dport" \
  SS_SHOTS="$BIN/console-screenshots" SS_DOCS="$SRC/docs"
cd "$SRC/tests/console"
if ! node --test --test-reporter=spec console.test.mjs; then
  echo "--- serve.log ---" >&2; tail -50 "$tmp/serve.log" >&2
  echo "--- chromedriver.log ---" >&2; tail -20 "$tmp/chromedriver.log" >&2
  exit 1
fi
