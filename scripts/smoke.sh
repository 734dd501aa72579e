#!/usr/bin/env bash
# End-to-end smoke run, called by `make test` as: scripts/smoke.sh BUILD OUTDIR
# Writes a tiny made-up corpus (synthetic speech, RAVDESS-style names) as WAV,
# runs experiments/compare.lua --quick on it, checks that every artefact exists
# and is sane, then runs predict.lua, ensemble.lua and embed.lua on the checkpoints and
# distils a CRNN from two of them.
set -euo pipefail
BUILD=${1:?usage: scripts/smoke.sh BUILD OUTDIR}
OUT=${2:?usage: scripts/smoke.sh BUILD OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
serlua="$BUILD/serlua"
[ -x "$serlua" ] || { echo "smoke: $serlua is not built" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

echo "== corpus: 24 synthetic speakers x 8 emotions, 1 clip each, 1 s"
"$serlua" -e "require('ser').data.synthetic{ speakers = 24, per_class = 1, seconds = 1.0, seed = 3, out = '$OUT/corpus' }"
n=$(find "$OUT/corpus" -name '*.wav' | wc -l)
[ "$n" -eq 192 ] || fail "expected 192 WAV files, found $n"

echo "== compare.lua --quick"
start=$(date +%s)
"$serlua" experiments/compare.lua --quick --ensemble --models cnn2d,crnn,cnn1d --data "$OUT/corpus" --out "$OUT/run" --seed 1 --crnn-hidden 32 --mels 32
echo "compare.lua --quick took $(( $(date +%s) - start )) s"

plots=$OUT/run/plots
results=$OUT/run/results
check_png() {
  [ -s "$1" ] || fail "missing $1"
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$1 is not a PNG"
  [ "$(stat -c %s "$1")" -gt 4000 ] || fail "$1 is suspiciously small (blank?)"
}
for m in cnn2d crnn cnn1d; do
  check_png "$plots/${m}_curves.png"
  check_png "$plots/${m}_confusion.png"
  [ -s "$results/${m}_report.txt" ] || fail "missing $results/${m}_report.txt"
  grep -q "weighted avg" "$results/${m}_report.txt" || fail "$results/${m}_report.txt has no classification report"
  [ -s "$results/${m}.safetensors" ] || fail "missing $results/${m}.safetensors"
  head -1 "$results/${m}_history.csv" | grep -q '^seed,fold,epoch,train_loss,train_label_loss,' \
    || fail "$results/${m}_history.csv has no history header"
  # --quick trains 2 epochs: one row each, numbered, with a validation loss
  [ "$(awk -F, 'NR > 1 && $1 == 1 && $3 == NR - 1 && $8 != "" { n++ } END { print n + 0 }' "$results/${m}_history.csv")" -eq 2 ] \
    || fail "$results/${m}_history.csv should hold epochs 1 and 2 of seed 1: $(cat "$results/${m}_history.csv")"
done
check_png "$plots/model_comparison.png"
check_png "$plots/ensemble_confusion.png"
grep -q "weighted avg" "$results/ensemble_report.txt" || fail "$results/ensemble_report.txt has no classification report"
ls "$plots"/umap_*.png >/dev/null 2>&1 || fail "missing $plots/umap_<model>.png"
check_png "$(ls "$plots"/umap_*.png | sed -n 1p)"
head -1 "$results/results.csv" | grep -q '^model,split,accuracy,weighted_f1,macro_f1,uar,epochs,train_seconds' \
  || fail "results.csv header is wrong: $(head -1 "$results/results.csv")"
rows=$(tail -n +2 "$results/results.csv" | wc -l)
[ "$rows" -eq 8 ] || fail "results.csv should have 8 rows (3 models and their ensemble x val, test), has $rows"
grep -q 'model_comparison.png' "$results/results.md" || fail "results.md does not link the comparison chart"
leftover=$(find "$results" -name '*.tmp*')
[ -z "$leftover" ] || fail "temporary files left in $results: $leftover"

echo "== the same seed trains the same model: CNN2D again, alone, to the bit"
"$serlua" experiments/compare.lua --quick --models cnn2d --data "$OUT/corpus" --out "$OUT/again" --seed 1 \
  --crnn-hidden 32 --mels 32 >"$OUT/again.txt" || fail "the repeated CNN2D run exited with status $? ($(cat "$OUT/again.txt"))"
first=$(grep '^cnn2d,' "$results/results.csv" | cut -d, -f1-6)
again=$(grep '^cnn2d,' "$OUT/again/results/results.csv" | cut -d, -f1-6)
[ -n "$first" ] && [ "$first" = "$again" ] || fail "the same seed gave other CNN2D scores: '$first' then '$again'"
"$serlua" -e "
local ser = require('ser')
local a = assert(ser.load('$results/cnn2d.safetensors'))
local b = assert(ser.load('$OUT/again/results/cnn2d.safetensors'))
local n = 0
for k, t in pairs(a) do
  assert(b[k], 'the repeated run has no tensor ' .. k)
  assert((t - b[k]):abs():max() == 0, 'weights ' .. k .. ' differ between two runs with the same seed')
  n = n + 1
end
assert(n > 0, 'no tensors in the checkpoint')" || fail "the repeated CNN2D run has other weights"

echo "== checkpoints load into fresh models (the log-mel models with compare.lua's default --freq flatten,"
echo "   CRNN with --crnn-hidden 32, each with the features it was trained on: 32 mels for the log-mel models)"
"$serlua" -e "
local ser = require 'ser'
for _, m in ipairs { 'cnn2d', 'crnn', 'cnn1d' } do
  local model, meta = ser.models.load('$results/' .. m .. '.safetensors')
  assert(model, meta)
  assert(meta.freq == (m ~= 'cnn1d' and 'flatten' or nil), m .. ': checkpoint records freq = ' .. tostring(meta.freq))
  assert(model.freq == meta.freq, m .. ': the loaded model is not the one trained')
  assert(m ~= 'crnn' or (meta.hidden == 32 and model.hidden == 32), 'crnn: checkpoint records hidden = ' .. tostring(meta.hidden))
  local kind = type(meta.features) == 'table' and meta.features.kind
  assert(kind == model.input, m .. ': checkpoint records features of kind ' .. tostring(kind))
  assert(kind ~= 'logmel' or meta.features.n_mels == 32, m .. ': checkpoint records n_mels = ' .. tostring(meta.features.n_mels))
end"

echo "== predict.lua and embed.lua"
# sed, not head: head's early exit would SIGPIPE sort and, under pipefail, end the script silently
wav=$(find "$OUT/corpus" -name '*.wav' | sort | sed -n 1p)
"$serlua" experiments/predict.lua "$results/crnn.safetensors" "$wav" >"$OUT/predict.txt" \
  || fail "predict.lua exited with status $? ($(cat "$OUT/predict.txt"))"
cat "$OUT/predict.txt"
grep -q "$(basename "$wav")" "$OUT/predict.txt" || fail "predict.lua did not report $wav"
"$serlua" experiments/ensemble.lua --data "$OUT/corpus" "$results/cnn2d.safetensors" "$results/crnn.safetensors" \
  "$results/cnn1d.safetensors" --out "$OUT/ens" >"$OUT/ensemble.txt" \
  || fail "ensemble.lua exited with status $? ($(cat "$OUT/ensemble.txt"))"
cat "$OUT/ensemble.txt"
# the three models and their ensemble scored on the test split, as compare.lua --ensemble did
for m in cnn2d crnn cnn1d ensemble; do
  grep -q "^$m  *test " "$OUT/ensemble.txt" || fail "ensemble.lua did not score $m on the test split"
done
want=$(awk -F, '$1 == "ensemble" && $2 == "test" { printf "%.4f", $3 }' "$results/results.csv")
got=$(awk '$1 == "ensemble" { printf "%.4f", $3 }' "$OUT/ensemble.txt")
[ "$want" = "$got" ] || fail "ensemble.lua's accuracy $got differs from compare.lua --ensemble's $want"
check_png "$OUT/ens/plots/ensemble_confusion.png"
"$serlua" experiments/embed.lua "$results/cnn2d.safetensors" "$OUT/corpus" --out "$OUT/embed.png"
check_png "$OUT/embed.png"

echo "== compare.lua --distill: a CRNN taught by the run's CNN2D and CRNN (their 32 mels; the student's 64)"
"$serlua" experiments/compare.lua --quick --models crnn --data "$OUT/corpus" --out "$OUT/kd" --seed 1 \
  --distill "$results/cnn2d.safetensors,$results/crnn.safetensors" --distill-alpha 0.7 >"$OUT/kd.txt" \
  || fail "compare.lua --distill exited with status $? ($(cat "$OUT/kd.txt"))"
grep -q "distilling from 2 teacher(s), alpha 0.7, temperature 2" "$OUT/kd.txt" || fail "no distillation line in $OUT/kd.txt"
"$serlua" -e "
local ser = require 'ser'
local _, meta = assert(ser.load('$OUT/kd/results/crnn.safetensors'))
assert(type(meta.distill) == 'table' and #meta.distill.teachers == 2 and meta.distill.alpha == 0.7,
  'the distilled checkpoint does not record its teachers')
assert(#meta.train_speakers == 16, 'the checkpoint records ' .. #(meta.train_speakers or {}) .. ' training speakers')"
# the distilled run's history keeps its loss on the true labels beside the objective
[ "$(awk -F, 'NR > 1 && $5 != "" && $5 != $4 { n++ } END { print n + 0 }' "$OUT/kd/results/crnn_history.csv")" -eq 2 ] \
  || fail "the distilled history has no train_label_loss apart from train_loss: $(cat "$OUT/kd/results/crnn_history.csv")"

echo "== compare.lua --distill-consistent: the same teachers label each augmented batch (the student reads their 32 mels)"
"$serlua" experiments/compare.lua --quick --models crnn --mels 32 --crnn-hidden 32 --data "$OUT/corpus" --out "$OUT/kdc" \
  --seed 1 --distill "$results/cnn2d.safetensors,$results/crnn.safetensors" --distill-consistent >"$OUT/kdc.txt" \
  || fail "compare.lua --distill-consistent exited with status $? ($(cat "$OUT/kdc.txt"))"
grep -q "consistent: the teachers label every training batch" "$OUT/kdc.txt" || fail "no consistent-teaching line in $OUT/kdc.txt"
"$serlua" -e "
local _, meta = assert(require('ser').load('$OUT/kdc/results/crnn.safetensors'))
assert(meta.distill and meta.distill.consistent == true, 'the checkpoint does not record consistent teaching')"
echo "smoke: all artefacts present"
