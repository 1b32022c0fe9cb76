#!/usr/bin/env bash
# gpu-carry.sh — packs built executables and the non-system shared libraries they
# need into .carry/ (git-ignored), so they can run on the GPU machine, which has
# CUDA but none of our Debian libraries. Usage: scripts/gpu-carry.sh BUILD_DIR EXE...
set -euo pipefail
cd "$(dirname "$0")/.."
B=$1; shift
rm -rf .carry && mkdir -p .carry/bin .carry/lib
for exe in "$@"; do
  cp "$B/$exe" .carry/bin/
  ldd "$B/$exe" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libcublas*|libcudart*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*|libgcc_s.so*|libstdc++.so*) ;;
      *) cp -nL "$lib" .carry/lib/ ;;
    esac
  done
done
cp -L /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 .carry/lib/ 2>/dev/null || true
du -sh .carry
