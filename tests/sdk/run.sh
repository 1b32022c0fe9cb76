#!/usr/bin/env bash
# run.sh — CTest's check_it_sdk_openai: the official OpenAI SDK (npm `openai`, installed
# by scripts/setup-npm.sh into tests/sdk/node_modules) drives two real `semstream worker`
# processes — a chat model written by mkgguf with a ChatML template (behind a bearer
# token), and stories260K — through tests/sdk/worker.test.mjs (node --test).
# Usage: tests/sdk/run.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$SRC/build}
if [ ! -f "$SRC/tests/sdk/node_modules/openai/package.json" ]; then
  echo "check_it_sdk_openai: the npm package openai is not installed in tests/sdk: run scripts/setup.sh" >&2
  exit 1
fi
command -v node >/dev/null || { echo "check_it_sdk_openai: node is not installed: run scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d /tmp/semstream-sdk-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts a worker with the given arguments (in this shell, so that cleanup knows its pid); sets
# URL once it listens.
start_worker() {
  local out="$tmp/worker${#pids[@]}.out"
  "$BIN/semstream" worker --port 0 --no-cache "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    if grep -q "on http://" "$out"; then
      URL=$(sed -n 's/.* on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$out" | head -1)
      return 0
    fi
    sleep 0.05
  done
  echo "check_it_sdk_openai: the worker did not start:" >&2
  cat "$out" >&2
  return 1
}

"$BIN/mkgguf" --shape tiny-qwen2 --type f32 --out "$tmp/tinychat.gguf" --chat-template chatml >/dev/null
( umask 077; echo "sdk-test-token" >"$tmp/token" )
start_worker --model "$tmp/tinychat.gguf" --served-model-name tinychat --auth-token-file "$tmp/token"
SS_CHAT_URL=$URL
start_worker --model "$SRC/../shared/models/stories260K.gguf" --served-model-name stories260K
SS_BASE_URL=$URL
export SS_CHAT_URL SS_BASE_URL SS_TOKEN=sdk-test-token
cd "$SRC/tests/sdk"
node --test --test-reporter=spec worker.test.mjs
