#!/usr/bin/env bash
# A short training run under valgrind's leak checker (issue 6; not part of `make test`, it
# takes several minutes): experiments/compare.lua --quick trains CNN2D, CRNN and CNN1D for 2
# epochs on the built-in synthetic corpus (1 s clips) and writes every plot and result.
# Passes when valgrind reports 0 bytes "definitely lost" and no invalid reads/writes.
#
#   scripts/valgrind-train.sh [BUILD]     BUILD defaults to build (built with `make BUILD=...`)
#
# One thread (SER_NUM_THREADS=1, OMP_NUM_THREADS=1): valgrind serialises threads anyway, and
# OpenMP/OpenBLAS thread pools that are alive at exit are "possibly lost"/"still reachable" by
# design, which is not what this run is about. gnuplot runs as a child process and is not
# traced. The full report is kept in BUILD/valgrind-train.log.
set -euo pipefail
BUILD=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "valgrind-train: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$BUILD/serlua" ] || { echo "valgrind-train: $BUILD/serlua is not built (make BUILD=$BUILD)" >&2; exit 2; }
out=$(mktemp -d /tmp/ser-valgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT
log=$BUILD/valgrind-train.log
start=$(date +%s)
SER_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=99 --num-callers=30 --log-file="$log" \
  "$BUILD/serlua" experiments/compare.lua --quick --out "$out" --seed 1 >"$out/stdout.txt" 2>&1 || rc=$?
rc=${rc:-0}
secs=$(( $(date +%s) - start ))
definite=$(grep -E 'definitely lost:' "$log" | tail -1 | sed -E 's/.*definitely lost: ([0-9,]+) bytes.*/\1/' | tr -d ,)
errors=$(grep -E 'ERROR SUMMARY:' "$log" | tail -1 | sed -E 's/.*ERROR SUMMARY: ([0-9,]+) errors.*/\1/' | tr -d ,)
grep -E 'definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY' "$log" | sed 's/^==[0-9]*== */  /'
[ -s "$out/results/results.csv" ] || { echo "valgrind-train: the run did not produce results.csv (rc $rc):"; tail -20 "$out/stdout.txt"; exit 1; }
echo "valgrind-train: ${secs} s, exit $rc, definitely lost ${definite:-?} bytes, ${errors:-?} errors (log: $log)"
[ "${definite:-1}" = 0 ] && [ "${errors:-1}" = 0 ] && [ "$rc" = 0 ]
