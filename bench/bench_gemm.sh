#!/usr/bin/env bash
# The bf16 GEMM behind amp vs OpenBLAS sgemm (and oneDNN's bf16 matmul when
# libdnnl-dev is installed) on the conv GEMM shapes, 1 and 2 threads.
#   bench/bench_gemm.sh        (BUILD names the build folder, default build)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
[ -f "$BUILD/libser.a" ] || { echo "bench_gemm.sh: $BUILD/libser.a not built" >&2; exit 1; }
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
dnnl=()
if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then dnnl=(-DSER_BENCH_DNNL -ldnnl); fi
cc -O2 -fopenmp -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_gemm.c "$BUILD/libser.a" \
  $(pkg-config --libs sndfile fftw3f soxr libcjson) -lopenblas -lm "${dnnl[@]}" -o "$bin"
[ ${#dnnl[@]} -eq 0 ] && echo "(oneDNN column skipped: apt-get install libdnnl-dev to include it)"
for t in 1 2; do SER_NUM_THREADS=$t OMP_NUM_THREADS=$t "$bin"; done
