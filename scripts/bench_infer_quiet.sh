#!/usr/bin/env bash
# bench_infer_quiet.sh — runs bench_infer one weight type at a time, each when the machine is
# quiet (1-minute load average under $MAXLOAD, default 1.0), so that a shared development machine
# does not leave contention in the figures. Each type's JSON goes to bench/results/infer-<shape>/
# (or to $OUT).
#   [MAXLOAD=L] [OUT=DIR] scripts/bench_infer_quiet.sh BUILD_DIR SHAPE TYPE... [-- bench_infer options]
set -euo pipefail
cd "$(dirname "$0")/.."
B=$1; shift
SHAPE=$1; shift
TYPES=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do TYPES+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
MAXLOAD=${MAXLOAD:-1.0}
OUT=${OUT:-bench/results/infer-$SHAPE}
mkdir -p "$OUT"
for t in "${TYPES[@]}"; do
  while :; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$l" -v m="$MAXLOAD" 'BEGIN { exit !(l < m) }' && break
    sleep 15
  done
  echo "== $t (load $(cut -d' ' -f1-3 /proc/loadavg)) =="
  "$B/bench_infer" --shape "$SHAPE" --types "$t" --out "$OUT/$t.json" "$@"
done
