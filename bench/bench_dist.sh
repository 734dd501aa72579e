#!/usr/bin/env bash
# Data-parallel training over MPI (docs/distributed.md): seconds per epoch of 1 process x 1
# thread, 1 process x 2 threads and 2 processes x 1 thread (the same global batch: 2 x b
# against 1 x 2b), the share of the 2-process epoch spent in the gradient allreduce
# (including waiting for the other process), then the allreduce alone per model size.
#
#   bench/bench_dist.sh [--models crnn,cnn2d] [--batch 8] [--data DIR] [--per K] [--epochs 2]
#
# Needs mpirun and build/ser_mpi.so (scripts/install-deps.sh; make). --data defaults to
# ../shared/data/ravdess16k when present, else a synthetic corpus; --per K clips per actor
# and class of actors 1-16; no augmentation (the features are computed once). The machine
# is shared and noisy: compare only the ratios of one invocation.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
models=crnn,cnn2d batch=8 per=1 epochs=2 data=""
[ -d ../shared/data/ravdess16k ] && data=../shared/data/ravdess16k
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --per) per=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bench_dist.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "bench_dist.sh: mpirun not found (scripts/install-deps.sh)" >&2; exit 1; }
[ -f "$BUILD/ser_mpi.so" ] || { echo "bench_dist.sh: $BUILD/ser_mpi.so missing (make, with mpicc)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --oversubscribe --bind-to none"
lscpu | grep -E '^Model name' | sed 's/  */ /g'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(mpirun --version | head -1); data: ${data:-synthetic}"
args=(--per "$per" --epochs "$epochs")
[ -n "$data" ] && args+=(--data "$data")
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
for m in ${models//,/ }; do
  one=$(SER_NUM_THREADS=1 "$BUILD/serlua" bench/dist_epoch.lua --model "$m" --batch $((2 * batch)) "${args[@]}" 2>/dev/null | grep RESULT)
  two=$(SER_NUM_THREADS=2 "$BUILD/serlua" bench/dist_epoch.lua --model "$m" --batch $((2 * batch)) "${args[@]}" 2>/dev/null | grep RESULT)
  sync=""; [ "$m" = cnn2d ] && sync=--sync-bn
  par=$(SER_NUM_THREADS=1 $mpi -n 2 "$BUILD/serlua" bench/dist_epoch.lua --model "$m" --batch "$batch" "${args[@]}" $sync 2>/dev/null | grep RESULT)
  t1=$(echo "$one" | field epoch_s); t2=$(echo "$two" | field epoch_s); tp=$(echo "$par" | field epoch_s)
  cp=$(echo "$par" | field comm_s); steps=$(echo "$par" | field steps)
  echo "$m: global batch $((2 * batch)), $steps steps per epoch; seconds per epoch:" \
    "1 proc x 1 thread $t1, 1 proc x 2 threads $t2, 2 procs x 1 thread $tp${sync:+ (synchronised BatchNorm)}"
  awk -v a="$t1" -v b="$t2" -v c="$tp" -v d="$cp" 'BEGIN { printf "  speed-up over 1x1: 1x2 %.2fx, 2x1 %.2fx; 2x1 vs 1x2 %.2fx; allreduce (with waiting) %.1f%% of the 2x1 epoch\n", a / b, a / c, b / c, 100 * d / c }'
done
echo "allreduce alone (2 processes, median):"
w=()
for d in ../shared/models/whisper-tiny.en ../shared/models/whisper-base models/whisper-base; do [ -d "$d" ] && w+=(--whisper "$d"); done
SER_NUM_THREADS=1 $mpi -n 2 "$BUILD/serlua" bench/dist_allreduce.lua --repeats 10 "${w[@]}" 2>/dev/null | sed 's/^ALLREDUCE /  /'
