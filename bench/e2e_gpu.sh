#!/usr/bin/env bash
# e2e_gpu.sh — the paper-digest example end to end (embedded broker, SEM_FILTER ->
# SEM_MAP -> SEM_AGG) with its inference on a GPU worker (`semstream worker --gpu 0`,
# reached through the openai backend) against the same pipeline on the in-process CPU
# engine, in one run, on the same random-weight model in a real shape (made here by
# mkgguf; its answers are meaningless but its work is real). Prints both wall times
# and their ratio; writes bench/results/e2e_gpu.json.
#
# usage: bench/e2e_gpu.sh [BIN_DIR] [SHAPE] [TYPE]   (defaults: build smollm2-135m q8_0)
# E2E_WORKER_ARGS replaces the worker's "--gpu 0" (e.g. "" to try the script on a CPU worker).
set -euo pipefail
BIN=${1:-build}; SHAPE=${2:-smollm2-135m}; TYPE=${3:-q8_0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/semstream-e2e.XXXXXX)
trap 'kill $WPID 2>/dev/null || true; rm -rf "$W"' EXIT
WPID=
MODEL=$W/model.gguf
"$BIN/mkgguf" --shape "$SHAPE" --type "$TYPE" --out "$MODEL" >/dev/null
PORT=$((20000 + RANDOM % 20000))

run_pipeline() { # $1 = state dir, $2 = SQL file, rest = extra options
  local dir=$1 sql=$2; shift 2
  mkdir -p "$dir"
  local t0 t1
  t0=$(date +%s%N)
  "$BIN/semstream" run "$sql" --db "$dir/s.db" --load papers="$ROOT/examples/papers.jsonl" \
      --until-idle --quiet --print-views --model "$MODEL" "$@" > "$dir/out.txt"
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# CPU: the local engine in-process
CPU_S=$(run_pipeline "$W/cpu" "$ROOT/examples/paper_digest.sql")

# GPU: a worker on device 0, registered as the default model
"$BIN/semstream" worker ${E2E_WORKER_ARGS---gpu 0} --model "$MODEL" --port "$PORT" --max-batch 64 > "$W/worker.log" 2>&1 &
WPID=$!
up=0
for _ in $(seq 150); do env -u LD_LIBRARY_PATH curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && { up=1; break; }; sleep 0.2; done
if [ $up = 0 ]; then echo "e2e_gpu: the worker did not come up:" >&2; cat "$W/worker.log" >&2; exit 1; fi
{ echo "CREATE MODEL gpu WITH (backend = 'openai', url = 'http://127.0.0.1:$PORT', model = 'model.gguf', default = true, max_concurrency = 64);"
  cat "$ROOT/examples/paper_digest.sql"; } > "$W/gpu.sql"
GPU_S=$(run_pipeline "$W/gpu" "$W/gpu.sql")
CALLS=$(env -u LD_LIBRARY_PATH curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^semstream_worker_requests_total/{print $2}')

# rows of each view per path: the comparison is like for like only when the answers agree
rows() { awk '/^view /{v=$2} /rows\)$/{gsub(/[(]/,"",$1); printf "%s%s=%s", sep, v, $1; sep=","}' "$1"; }
CPU_ROWS=$(rows "$W/cpu/out.txt"); GPU_ROWS=$(rows "$W/gpu/out.txt")
echo "view rows: CPU {$CPU_ROWS}  GPU {$GPU_ROWS}"
RATIO=$(awk -v c="$CPU_S" -v g="$GPU_S" 'BEGIN { printf "%.3f", c / g }')
echo "paper digest, $SHAPE $TYPE: CPU engine ${CPU_S}s, GPU worker ${GPU_S}s (${CALLS} worker HTTP requests): GPU is ${RATIO}x the CPU path's speed"
mkdir -p "$ROOT/bench/results"
printf '{"bench":"e2e_gpu","shape":"%s","type":"%s","cpu_seconds":%s,"gpu_seconds":%s,"worker_requests":%s,"speedup":%s,"cpu_rows":"%s","gpu_rows":"%s"}\n' \
  "$SHAPE" "$TYPE" "$CPU_S" "$GPU_S" "${CALLS:-0}" "$RATIO" "$CPU_ROWS" "$GPU_ROWS" > "${OUT_JSON:-$ROOT/bench/results/e2e_gpu.json}"
