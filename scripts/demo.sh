#!/usr/bin/env bash
# demo.sh — the README's main job: sets up and builds semstream, then runs the
# paper-digest example (examples/paper_digest.sql) on the embedded Kafka broker
# and the local model, feeding examples/papers.jsonl into the `papers` stream,
# until every view is caught up; then prints the views.
#
#   scripts/demo.sh [--model FILE.gguf] [extra `semstream run` options]
#
# The model defaults to $SEMSTREAM_MODEL, else ../shared/models/stories260K.gguf.
# State goes to a fresh directory under build/demo (removed first), so every
# run starts from scratch; the inference cache sits beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh

DEMO=build/demo
rm -rf "$DEMO"
mkdir -p "$DEMO"

ARGS=()
if [ -z "${SEMSTREAM_MODEL:-}" ] && [ -f ../shared/models/stories260K.gguf ]; then
  ARGS+=(--model ../shared/models/stories260K.gguf)
fi

# The example, then what the engine did (statements after the views run once
# the views have caught up with the loaded papers).
{ cat examples/paper_digest.sql; printf '\nSHOW VIEWS;\nEXPLAIN VIEW db_papers;\n'; } > "$DEMO/demo.sql"

echo "== semstream run examples/paper_digest.sql (embedded broker, local model) =="
build/semstream run "$DEMO/demo.sql" \
  --db "$DEMO/semstream.db" \
  --load papers=examples/papers.jsonl \
  --until-idle --print-views "${ARGS[@]}" "$@"
