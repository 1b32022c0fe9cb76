#!/usr/bin/env bash
# demo.sh — the README's main job: sets up and builds semstream, then runs the
# paper-digest example (examples/paper_digest.sql) on the durable log (beside
# the state) and the local model, feeding examples/papers.jsonl into the `papers` stream,
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
TINY=0
case " $* " in *" --model "*) ;; *)
  if [ -z "${SEMSTREAM_MODEL:-}" ] && [ -f ../shared/models/stories260K.gguf ]; then
    ARGS+=(--model ../shared/models/stories260K.gguf)
    TINY=1
  fi ;;
esac

# The example, then what the engine did (statements after the views run once
# the views have caught up with the loaded papers).
{ cat examples/paper_digest.sql; printf '\nSHOW VIEWS;\nEXPLAIN VIEW db_papers;\n'; } > "$DEMO/demo.sql"
if [ $TINY = 1 ]; then
  # stories260K writes children's stories and never says "yes" with probability above 0.5;
  # with it, the demo keeps papers whose P(yes) >= 0.15 so that rows flow through SEM_MAP and
  # SEM_AGG (the answers themselves are meaningless). A real model needs no cut-off.
  sed -i "s|SEM_FILTER('Is this paper about database systems? Abstract: {abstract}')|SEM_FILTER('Is this paper about database systems? Abstract: {abstract}', yes_prob = 0.15)|" "$DEMO/demo.sql"
  echo "note: default tiny model (stories260K): its answers are meaningless; SEM_FILTER keeps P(yes) >= 0.15 here"
fi

echo "== semstream run examples/paper_digest.sql (durable log, local model) =="
build/semstream run "$DEMO/demo.sql" \
  --db "$DEMO/semstream.db" \
  --load papers=examples/papers.jsonl \
  --until-idle --print-views "${ARGS[@]}" "$@"
