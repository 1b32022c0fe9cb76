#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET] — builds the libFuzzer harness tests/fuzz_<TARGET>.c
# (default: parser) with clang, libFuzzer coverage on the whole library and
# ASan + UBSan, in its own build directory (build-fuzz/, since the library must be
# compiled by clang too), then fuzzes for SECONDS (default 60) starting from the
# SQL files under tests/sql/ and examples/. New corpus entries are kept in
# build-fuzz/corpus-<TARGET>/; a crash leaves crash-* files in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
TARGET=${2:-parser}
JOBS=${SS_FUZZ_JOBS:-2}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

CC=clang CXX=clang++ cmake -S . -B build-fuzz "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSS_SANITIZE=ON -DSS_CUDA=OFF -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j"$JOBS" --target "fuzz_$TARGET"

CORPUS=build-fuzz/corpus-$TARGET
mkdir -p "$CORPUS"
SEEDS=()
for d in tests/sql examples; do
  [ -d "$d" ] && SEEDS+=("$d")
done
cd build-fuzz
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "./fuzz_$TARGET" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "corpus-$TARGET" "${SEEDS[@]/#/../}"
