#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET|all] — builds the libFuzzer harnesses tests/fuzz_<TARGET>.c
# (parser: the SQL parser; json: the JSON parser, the JSON text helpers and the
# stream message decoders; pgwire: the PostgreSQL protocol's message decoders,
# parameters, statement classification and SCRAM) with the distribution's clang
# (clang-14 on Debian bookworm), libFuzzer coverage and ASan + UBSan, in build-fuzz/
# (each harness compiles only the sources it needs), then fuzzes each for SECONDS
# (default 60) from the seeds of tests/fuzz/<TARGET>/ and, for the parser, the SQL
# files under tests/sql/ and examples/. New corpus entries are kept in
# build-fuzz/corpus-<TARGET>/; a crash leaves crash-* files in build-fuzz/ and fails.
# scripts/test.sh runs `fuzz.sh 20 all` (SS_SKIP_FUZZ=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
TARGET=${2:-parser}
JOBS=${SS_FUZZ_JOBS:-$(nproc)}
CC=${SS_FUZZ_CC:-$(command -v clang-14 || command -v clang)}
CXX=${SS_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ "$TARGET" = all ]; then
  TARGETS=(parser json pgwire)
else
  TARGETS=("$TARGET")
fi

CC=$CC CXX=$CXX cmake -S . -B build-fuzz "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSS_SANITIZE=ON -DSS_CUDA=OFF -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}"

for t in "${TARGETS[@]}"; do
  CORPUS=build-fuzz/corpus-$t
  mkdir -p "$CORPUS"
  SEEDS=()
  [ -d "tests/fuzz/$t" ] && SEEDS+=("tests/fuzz/$t")
  if [ "$t" = parser ]; then
    for d in tests/sql examples; do
      [ -d "$d" ] && SEEDS+=("$d")
    done
  fi
  echo "== fuzz_$t for ${SECS}s =="
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "./fuzz_$t" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "corpus-$t" "${SEEDS[@]/#/../}")
done
