#!/usr/bin/env bash
# group_kills.sh [KILLS] [REPEATS] — the long version of tests/check_it_group.c (issue 14,
# docs/ARCHITECTURE.md §6.7): three `semstream run --group` instances on `semstream kafka` with an
# 8-partition input; KILLS rounds (default 20) in which input arrives, one instance is killed with
# SIGKILL at a random moment and restarted (every fourth round it stays away for a round: removed,
# then added); the sink, read with read_committed and folded by key, must equal the view of the
# input (nothing missing, nothing stale). Runs it REPEATS times (default 1); exits non-zero on the
# first failure. Builds build/check_it_group first.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
REPEATS=${2:-1}
cmake --build build --target semstream check_it_group -j2 >/dev/null
for r in $(seq 1 "$REPEATS"); do
  echo "group_kills: run $r of $REPEATS, $KILLS SIGKILL rounds"
  SS_TEST_GROUP_KILLS=$KILLS CK_RUN_SUITE=it_group CK_RUN_CASE=group build/check_it_group
done
