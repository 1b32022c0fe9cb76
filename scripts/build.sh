#!/usr/bin/env bash
# build.sh — configures and builds semstream into build/ (Release-ish, with tests).
# Usage: scripts/build.sh [extra cmake args]; BUILD_DIR overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S . -B "$B" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
cmake --build "$B" -j"$(nproc)"
