#!/usr/bin/env bash
# A short training run under valgrind's leak checker (issue 6; not part of `make test`: ~35 min
# under valgrind on the 2-core machine): the path of experiments/compare.lua on a small scale — a synthetic
# corpus written to WAV files, scanned, split by speaker, and CNN2D, CRNN and CNN1D each trained
# for 2 epochs through ser.train.fit (loader, prefetch thread, features, augmentation-free
# batches, AdamW, evaluation, checkpoint), then every checkpoint loaded back with
# ser.models.load. (compare.lua --quick itself takes ~2 min natively, over an hour under
# valgrind; the same code runs here on 0.25 s clips and 4 speakers.)
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
cat >"$out/train.lua" <<'LUA'
local ser = require "ser"
local out = arg[1]
ser.manual_seed(1)
ser.data.synthetic{ speakers = 4, per_class = 1, seconds = 0.25, seed = 3, out = out .. "/corpus" }
local corpus = assert(ser.data.scan(out .. "/corpus"))
local train, val, test = corpus:split{ train = { 1, 2 }, val = { 3, 3 }, test = { 4, 4 }, quiet = true }
local rows = { "model,split,accuracy" }
for _, name in ipairs { "cnn2d", "crnn", "cnn1d" } do
  ser.manual_seed(1)
  local model = ser.models.create(name, { classes = #corpus.classes })
  local _, history, result = ser.train.fit(model, { train, val, test }, {
    epochs = 2, batch = 8, seconds = 0.25, features = model.input, classes = corpus.classes,
    progress = "epoch", name = name, checkpoint = out .. "/results/" .. name .. ".safetensors" })
  assert(#history == 2, name .. ": expected 2 epochs, got " .. #history)
  rows[#rows + 1] = ("%s,%s,%.4f"):format(name, result.split, result.accuracy)
  local back, meta = ser.models.load(out .. "/results/" .. name .. ".safetensors")
  assert(back, meta)
end
require("ser.fs").write(out .. "/results/results.csv", table.concat(rows, "\n") .. "\n")
print(table.concat(rows, "\n"))
LUA
mkdir -p "$out/results"
start=$(date +%s)
SER_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=99 --num-callers=30 --log-file="$log" \
  "$BUILD/serlua" "$out/train.lua" "$out" >"$out/stdout.txt" 2>&1 || rc=$?
rc=${rc:-0}
secs=$(( $(date +%s) - start ))
definite=$(grep -E 'definitely lost:' "$log" | tail -1 | sed -E 's/.*definitely lost: ([0-9,]+) bytes.*/\1/' | tr -d ,)
errors=$(grep -E 'ERROR SUMMARY:' "$log" | tail -1 | sed -E 's/.*ERROR SUMMARY: ([0-9,]+) errors.*/\1/' | tr -d ,)
grep -E 'definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY' "$log" | sed 's/^==[0-9]*== */  /'
[ -s "$out/results/results.csv" ] || { echo "valgrind-train: the run did not produce results.csv (rc $rc):"; tail -20 "$out/stdout.txt"; exit 1; }
echo "valgrind-train: ${secs} s, exit $rc, definitely lost ${definite:-?} bytes, ${errors:-?} errors (log: $log)"
[ "${definite:-1}" = 0 ] && [ "${errors:-1}" = 0 ] && [ "$rc" = 0 ]
