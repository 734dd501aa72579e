#!/usr/bin/env bash
# CNN1D's four convolutions, im2col vs the polyphase Winograd, interleaved in one
# process (bench/bench_conv1d.c), fp32 and amp.
#   bench/bench_conv1d.sh [--threads 1,2] [--repeats 5]   (BUILD names the build folder, default build)
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
threads=1,2 repeats=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "bench_conv1d.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$BUILD/libser.a" ] || { echo "bench_conv1d.sh: $BUILD/libser.a not built" >&2; exit 1; }
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -O2 -fopenmp -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_conv1d.c "$BUILD/libser.a" \
  $(pkg-config --libs sndfile fftw3f soxr libcjson) -lopenblas -lm -o "$bin"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=, read -ra tl <<<"$threads"
for t in "${tl[@]}"; do SER_NUM_THREADS=$t OMP_NUM_THREADS=$t "$bin" "$repeats"; done
