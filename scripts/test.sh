#!/usr/bin/env bash
# test.sh — sets up, builds and runs every test: the normal build under CTest,
# then the unit tests again under AddressSanitizer + UBSan, then each libFuzzer
# harness for a bounded time (scripts/fuzz.sh; SS_SKIP_FUZZ=1 skips it).
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
J=$(nproc)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

echo "== build (warnings are errors) =="
cmake -S . -B build "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSS_WERROR=ON >/dev/null
cmake --build build -j"$J"
echo "== tests =="
(cd build && ctest --output-on-failure -j"$J" ${SS_CTEST_ARGS:-})

if [ "${SS_SKIP_ASAN:-0}" != 1 ]; then
  echo "== ASan + UBSan build of the unit tests =="
  cmake -S . -B build-asan "${GEN[@]}" -DCMAKE_BUILD_TYPE=Debug -DSS_SANITIZE=ON -DSS_WERROR=ON -DSS_CUDA=OFF >/dev/null
  cmake --build build-asan -j"$J"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 SS_ASAN=1 ctest --output-on-failure -j"$J" -L unit ${SS_CTEST_ARGS:-} || exit 1)
fi

if [ "${SS_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzzing (clang, ASan + UBSan, ${SS_FUZZ_SECONDS:-20} s per harness) =="
  scripts/fuzz.sh "${SS_FUZZ_SECONDS:-20}" all
fi
