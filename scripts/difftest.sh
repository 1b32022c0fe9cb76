#!/usr/bin/env bash
# difftest.sh [CASES] [JOBS] — the long differential-testing campaign (tests/difftest/README.md):
# CASES random cases (default 2000), each at batch sizes 1 and 1024, split over JOBS difftest
# processes run side by side (default 4), on the durable log (SS_DIFFTEST_ARGS=--kafka: on the
# mock Kafka cluster, one per process), with one throw-away PostgreSQL server for the views
# compared with PostgreSQL (tests/difftest/with-postgres.sh; run under `nice` on a shared machine). Builds build/difftest first. Failing cases are written as replayable
# scripts under build/difftest-failures/. Prints one summary line per process and a total;
# exits non-zero when any comparison mismatched. The long campaign of time and windows only
# (TIMESTAMP/DATE/INTERVAL, DATE_TRUNC, EXTRACT, TUMBLE/HOP against PostgreSQL's date_bin):
#   SS_DIFFTEST_ARGS='--only time' scripts/difftest.sh 2000 2
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-2000}
JOBS=${2:-4}
SEED=${SS_DIFFTEST_SEED:-1000}
if [ ! -f build/build.ninja ] && [ ! -f build/Makefile ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSS_CUDA=OFF >/dev/null
fi
cmake --build build --target difftest -j2 >/dev/null
OUT=build/difftest-failures
mkdir -p "$OUT"
cp build/difftest "$OUT/difftest.bin" # a rebuild during the campaign does not touch the running copy
per=$(( (CASES + JOBS - 1) / JOBS ))
start=$(date +%s)
rm -f "$OUT"/job*.log "$OUT"/job*.err
status=0
export CASES JOBS SEED OUT per
tests/difftest/with-postgres.sh bash -c '
  pids=()
  for j in $(seq 0 $((JOBS - 1))); do
    n=$(( CASES - j * per < per ? CASES - j * per : per ))
    [ "$n" -gt 0 ] || continue
    SS_SOURCE_DIR=$PWD "$OUT/difftest.bin" --seed $((SEED + j * per)) --cases "$n" --batch both --out "$OUT" \
      ${SS_DIFFTEST_ARGS:-} >"$OUT/job$j.log" 2>"$OUT/job$j.err" &
    pids+=($!)
  done
  st=0
  for p in "${pids[@]}"; do wait "$p" || st=1; done
  exit $st' || status=1
grep -h '^difftest:' "$OUT"/job*.log
grep -h '^difftest-summary' "$OUT"/job*.log | awk -v secs=$(( $(date +%s) - start )) -v seed="$SEED" '
  { for (i = 2; i <= NF; i++) { split($i, kv, "="); tot[kv[1]] += kv[2] } }
  END { printf "total: %d cases (seeds %d..%d), %d runs at batch sizes 1 and 1024, %d restarts, %d view comparisons (%d with PostgreSQL, the rest with SQLite), %d mismatching runs, %d views SQLite refused, %d PostgreSQL refused, %d comparisons skipped (SQLite error), %d (PostgreSQL error), %d views skipped (no PostgreSQL), %d s wall\n", tot["cases"], seed, seed + tot["cases"] - 1, tot["runs"], tot["restarts"], tot["compared"], tot["pg_compared"], tot["failed"], tot["refused"], tot["pg_refused"], tot["skipped"], tot["pg_skipped"], tot["nopg"], secs }'
if [ "$status" -ne 0 ]; then
  echo "difftest: mismatches; see $OUT/job*.err and the scripts in $OUT" >&2
fi
exit $status
