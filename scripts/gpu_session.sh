#!/usr/bin/env bash
# gpu_session.sh — one lease of the GPU machine (issue 19): the checks and benchmarks that
# need the device, run from a self-contained .carry/ folder, results under $OUT.
#
# Here (development machine), after a CUDA build:
#   scripts/gpu_session.sh pack [BUILD_DIR]
#     packs the executables (GS_EXES="check_cuda bench_gpu": only those), the shared libraries they need (scripts/gpu-carry.sh), the test
#     models (../shared/models) and the paper-digest example into .carry/pack.txz, beside a
#     copy of this script (.carry/ is git-ignored; it travels with the device tool's `carry`).
# There (device machine, repository root; the pack is unpacked into /tmp/gs/c), each STEP in order:
#   bash .carry/gpu_session.sh STEP...
#     info       nvidia-smi, driver, clocks
#     check      check_cuda (must pass)
#     llama      bench_gpu llama-3.2-1b f16,q8_0,q4_k: prefill, decode, CHOOSE, per-matrix GEMV
#     ktypes     bench_gpu llama-3.2-1b, the other GGUF block types: GEMV and decode at 1, 8
#     decode1    bench_gpu llama-3.2-1b f16,q8_0,q4_k: decode at batches 1 and 8, per-matrix GEMV
#     decode1old the same with SS_CUDA_OLD_GEMV=1 (the F16, Q8_0, Q4_K GEMVs of before)
#     smol       bench_gpu smollm2-135m, qwen2.5-0.5b f16,q8_0: prefill, decode, CHOOSE
#     smolprof   smollm2-135m q8_0 decode at batch 1 with SS_CUDA_PROFILE=kernels (time per kernel)
#     choose     bench_gpu CHOOSE phase only, llama-3.2-1b f16, with SS_CUDA_TIMING=1
#     contbatch  bench_contbatch --model stories260K.gguf --gpu 0
#     e2e        the paper digest on a GPU worker against the CPU engine (bench/e2e_gpu.sh)
#     ab         decode at batch 1 with each decode switch of issue 19 flipped in turn (SS_CUDA_PDL=0,
#                SS_CUDA_QROWS=1, SS_CUDA_ATT_MERGE=0, SS_CUDA_PREFETCH=0 and =1) against the defaults
#     STEP@base  a bench_gpu step (llama, smol, smolprof, choose, decode1, ab) with the bench_gpu of
#                another build, packed as base/bench_gpu_base (GS_BASE=path at pack time), so a
#                change and its baseline run on the same machine in one lease
# Every step's output is appended to $OUT/all.log (the device tool returns at most 8 files) and
# its JSON goes to $OUT/<step>.json; a step that would start after $GS_DEADLINE seconds
# (default 540) of the run is skipped and says so.
set -uo pipefail

if [ "${1:-}" = pack ]; then
  cd "$(dirname "$0")/.."
  B=${2:-build-cuda}
  S=/tmp/gs-stage
  rm -rf "$S" && mkdir -p "$S"
  scripts/gpu-carry.sh "$B" ${GS_EXES:-check_cuda bench_gpu bench_contbatch semstream mkgguf}
  mv .carry/bin .carry/lib "$S"/ && strip --strip-debug "$S"/bin/*
  mkdir -p "$S"/models "$S"/bench "$S"/examples
  for f in stories260K.gguf stories260K-Q4_K_M.gguf stories260K-Q5_K_M.gguf stories260K.greedy200.tokens \
           stories260K.greedy200.txt; do
    cp ../shared/models/$f "$S"/models/
  done
  cp bench/e2e_gpu.sh "$S"/bench/
  if [ -n "${GS_BASE:-}" ]; then mkdir -p "$S"/base && cp "$GS_BASE" "$S"/base/bench_gpu_base; fi
  cp examples/papers.jsonl examples/paper_digest.sql "$S"/examples/
  { git rev-parse --short HEAD; git status --porcelain --untracked-files=no | grep -q . && echo "+ uncommitted changes"; } \
    > "$S"/COMMIT
  rm -rf .carry && mkdir -p .carry
  cp scripts/gpu_session.sh .carry/
  tar -C "$S" -cf - . | xz -${GS_XZ:-6} -T2 > .carry/pack.txz   # 64 MiB travel limit: 5 executables of one library
  du -sh .carry
  exit 0
fi

: "${OUT:=/tmp/gs-out}"
mkdir -p "$OUT" /tmp/gs/src /tmp/gs/shared
HERE=$(cd "$(dirname "$0")" && pwd)
C=/tmp/gs/c
if [ ! -x $C/bin/check_cuda ]; then
  mkdir -p $C
  if command -v xz >/dev/null; then tar -C $C -xJf "$HERE/pack.txz"
  else python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$HERE/pack.txz" $C; fi
fi
export LD_LIBRARY_PATH=$C/lib:/usr/local/cuda/lib64
# tests find their models at $SS_SOURCE_DIR/../shared/models
ln -sfn "$C/models" /tmp/gs/shared/models
export SS_SOURCE_DIR=/tmp/gs/src
BIN=$C/bin
T0=$(date +%s)
DEADLINE=${GS_DEADLINE:-540}
echo "carry built from $(tr '\n' ' ' < "$C/COMMIT")"

step() { # name, command...
  local name=$1; shift
  local el=$(( $(date +%s) - T0 ))
  if [ "$el" -ge "$DEADLINE" ]; then echo "== $name: SKIPPED (${el}s into the run)"; return; fi
  echo "== $name (at ${el}s)"
  local s0=$(date +%s)
  echo "==== $name" >> "$OUT/all.log"
  "$@" 2>&1 | tee "/tmp/gs/$name.log" >> "$OUT/all.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: rc=$rc in $(( $(date +%s) - s0 ))s"
}

ab_decode() { # the decode paths of issue 19, each off in turn, decode at batch 1
  local v
  for v in all SS_CUDA_PDL=0 SS_CUDA_QROWS=1 SS_CUDA_ATT_MERGE=0 SS_CUDA_PREFETCH=0 SS_CUDA_PREFETCH=1; do
    echo "---- $v"
    env ${v/all/GS_AB=all} "$BG" --shapes llama-3.2-1b --types f16,q8_0,q4_k --phases decode --batches 1 \
      --out /tmp/gs/ab-llama.json | grep -E "^llama|decode"
    env ${v/all/GS_AB=all} "$BG" --shapes smollm2-135m --types f16,q8_0 --phases decode --batches 1 \
      --out /tmp/gs/ab-smol.json | grep -E "^smollm|decode"
  done
}

for s0 in "$@"; do
  BG=$BIN/bench_gpu s=$s0
  if [ "${s0%@base}" != "$s0" ]; then BG=$C/base/bench_gpu_base s=${s0%@base}; fi
  case $s in
    info) step info bash -c 'nvidia-smi; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu --format=csv; nproc; uname -r' ;;
    check) step check env CK_TIMEOUT_MULTIPLIER=3 "$BIN/check_cuda"
           grep -E "^[0-9]+%|SKIP|:F:|:E:" /tmp/gs/check.log | head -20 ;;
    llama) step "$s0" "$BG" --shapes llama-3.2-1b --types f16,q8_0,q4_k \
             --phases prefill,decode,choose,gemv --out "$OUT/${s0/@/-}.json" ;;
    ktypes) step "$s0" "$BG" --shapes llama-3.2-1b --types q6_k,q5_k,q4_0 \
              --phases gemv,decode --batches 1,8 --out "$OUT/ktypes.json" ;;
    decode1) step "$s0" "$BG" --shapes llama-3.2-1b --types f16,q8_0,q4_k \
               --phases decode,gemv --batches 1,8 --out "$OUT/${s0/@/-}.json" ;;
    decode1old) step "$s0" env SS_CUDA_OLD_GEMV=1 "$BG" --shapes llama-3.2-1b \
                  --types f16,q8_0,q4_k --phases decode,gemv --batches 1,8 --out "$OUT/decode1old.json" ;;
    smol) step "$s0" "$BG" --shapes smollm2-135m,qwen2.5-0.5b --types f16,q8_0 \
            --phases prefill,decode,choose --out "$OUT/${s0/@/-}.json" ;;
    smolprof) step "$s0" env SS_CUDA_PROFILE=kernels SS_CUDA_PROFILE_SKIP=40 "$BG" \
                --shapes smollm2-135m --types q8_0 --phases decode --batches 1 --out /tmp/gs/smolprof.json ;;
    choose) step "$s0" env SS_CUDA_TIMING=1 "$BG" --shapes llama-3.2-1b --types f16 \
              --phases choose --out /tmp/gs/choose.json ;;
    contbatch) step contbatch "$BIN/bench_contbatch" --model "$C/models/stories260K.gguf" --gpu 0 \
                 --out "$OUT/contbatch.json" ;;
    ab) step "$s0" ab_decode ;;
    e2e) step e2e env OUT_JSON="$OUT/e2e.json" bash "$C/bench/e2e_gpu.sh" "$BIN" smollm2-135m q8_0 ;;
    *) echo "unknown step $s" ;;
  esac
  # the benchmarks' summary lines, so the reply's tail carries them
  [ -f "/tmp/gs/$s0.log" ] && grep -E "roofline|req/s|tok/s|GB/s|TFLOP|p50|GPU is|rows:|of copy|^----|CUDA backend|host:" "/tmp/gs/$s0.log" | cut -c1-180 | head -60
done
echo "total $(( $(date +%s) - T0 ))s"
