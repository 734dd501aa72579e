#!/usr/bin/env bash
# wav2vec2-family encoders, ours (serlua) vs PyTorch 1.13 / torchaudio 0.13, inference on a batch
# of random audio (default 2 x 4 s), fp32 and mixed precision (ours: ser.set_amp, bf16 GEMMs;
# torch: torch.autocast("cpu", bfloat16)), 2 threads, for two base-size models with random
# weights: HuBERT Base (torchaudio.models.hubert_base(); wav2vec2-base computes the same) and
# WavLM Base (torchaudio's stem + the WavLM blocks of tests/lua/helpers/wav2vec2_ref.py, since
# torchaudio 0.13 has no WavLM). Also checks every hidden state of both against a float64
# PyTorch reference on two clips (../shared/data/ravdess16k when present, else generated).
#
#   bench/bench_wav2vec2.sh [--batch 2] [--seconds 4] [--threads 2] [--repeats 3] [--rounds 2]
#                           [--models hubert_base,wavlm_base]
#
# The two sides take turns, --rounds times per model (torch, ours, torch, ours, ...; each turn
# a warm-up and --repeats timed forwards per precision), and the medians over all turns are
# compared, in wall time and in CPU time of all threads (OMP_WAIT_POLICY=passive on both sides,
# so waiting threads sleep instead of spinning: on a shared machine CPU time is the steadier
# measure). Compare only the ratios of one run, and quote the load printed.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
batch=2 seconds=4 threads=2 repeats=3 rounds=2 models=hubert_base,wavlm_base
shared=${SER_SHARED:-$root/../shared}
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench_wav2vec2.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_wav2vec2.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch, torchaudio' 2>/dev/null || { echo "bench_wav2vec2.sh: python3-torch / torchaudio missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; flags:$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx512f|avx512_bf16|amx_bf16' | tr '\n' ' ' | sed 's/^/ /')"
echo "torch:  $("$py" -c 'import torch, torchaudio; print(torch.__version__, "torchaudio", torchaudio.__version__)')"
echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
echo "batch:  $batch x $seconds s, $threads threads, medians of $rounds x $repeats forwards per side"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"

# two clips for the parity check: RAVDESS speech when present, else generated voiced clips
"$serlua" -e "
local ser = require 'ser'
local base = '$shared/data/ravdess16k/Actor_02/'
local out = {}
for i, f in ipairs { '03-01-05-02-02-01-02.flac', '03-01-01-01-01-01-02.flac' } do
  local w = io.open(base .. f, 'rb') and ser.audio.load(base .. f, { sr = 16000, mono = true })
  out['clip.' .. i] = w or (ser.tensor.randn(16000 * (2 + i)) * 0.1)
end
assert(ser.save('$tmp/clips.safetensors', out))"
"$py" bench/bench_wav2vec2.py --make "$tmp" "$tmp/clips.safetensors" --models "$models" >/dev/null

export SER_NUM_THREADS=$threads OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=passive
med() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { { grep " $2 ms=" "$1" || true; } | sed "s/.* $3=\([0-9.]*\).*/\1/" | med; }
for m in ${models//,/ }; do
  "$serlua" bench/bench_wav2vec2.lua "$tmp/$m" --repeats 0 --batch 1 --seconds 1 --ref "$tmp/clips.safetensors" | grep parity
  : > "$tmp/$m.torch"; : > "$tmp/$m.ours"
  for r in $(seq "$rounds"); do
    "$py" bench/bench_wav2vec2.py --time $m --batch "$batch" --seconds "$seconds" --threads "$threads" --repeats "$repeats" | tee -a "$tmp/$m.torch"
    "$serlua" bench/bench_wav2vec2.lua "$tmp/$m" --batch "$batch" --seconds "$seconds" --repeats "$repeats" | tee -a "$tmp/$m.ours"
  done
  for prec in fp32 amp; do
    for what in ms cpu; do
      t=$(field "$tmp/$m.torch" $prec $what); o=$(field "$tmp/$m.ours" $prec $what)
      [ -n "$t" ] && [ -n "$o" ] && echo "RESULT $m $prec $what torch=$t ours=$o speedup=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')"
    done
  done
  for what in ms cpu; do
    t=$(field "$tmp/$m.torch" fp32 $what); o=$(field "$tmp/$m.ours" amp $what)
    [ -n "$t" ] && [ -n "$o" ] && echo "RESULT $m ours-amp vs torch-fp32 $what torch=$t ours=$o speedup=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')"
  done
done
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, after)"
