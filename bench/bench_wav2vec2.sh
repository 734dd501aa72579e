#!/usr/bin/env bash
# wav2vec2-family encoders, ours (serlua) vs PyTorch 1.13 / torchaudio 0.13, inference on a batch
# of random audio (default 4 x 4 s), fp32 and mixed precision (ours: ser.set_amp, bf16 GEMMs;
# torch: torch.autocast("cpu", bfloat16)), 2 threads, for two base-size models with random
# weights: HuBERT Base (torchaudio.models.hubert_base(); wav2vec2-base computes the same) and
# WavLM Base (torchaudio's stem + the WavLM blocks of tests/lua/helpers/wav2vec2_ref.py, since
# torchaudio 0.13 has no WavLM). Also checks every hidden state of both against a float64
# PyTorch reference on two clips (../shared/data/ravdess16k when present, else generated).
#
#   bench/bench_wav2vec2.sh [--batch 4] [--seconds 4] [--threads 2] [--repeats 5]
#
# The two sides run one after the other (torch, ours, per model): on a shared machine compare
# only the ratios of one run, and quote the load printed.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
batch=4 seconds=4 threads=2 repeats=5
shared=${SER_SHARED:-$root/../shared}
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
echo "batch:  $batch x $seconds s, $threads threads, median of $repeats"
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
"$py" bench/bench_wav2vec2.py --make "$tmp" "$tmp/clips.safetensors" >/dev/null

export SER_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
for m in hubert_base wavlm_base; do
  "$py" bench/bench_wav2vec2.py --time $m --batch "$batch" --seconds "$seconds" --threads "$threads" --repeats "$repeats" | tee "$tmp/$m.torch"
  "$serlua" bench/bench_wav2vec2.lua "$tmp/$m" --batch "$batch" --seconds "$seconds" --repeats "$repeats" --ref "$tmp/clips.safetensors" | tee "$tmp/$m.ours"
  for prec in fp32 amp; do
    t=$(grep " $prec " "$tmp/$m.torch" | sed 's/.*ms=\([0-9.]*\).*/\1/')
    o=$(grep " $prec " "$tmp/$m.ours" | sed 's/.*ms=\([0-9.]*\).*/\1/')
    echo "RESULT $m $prec torch_ms=$t ours_ms=$o speedup=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')"
  done
done
t=$(grep " fp32 " "$tmp/hubert_base.torch" | sed 's/.*ms=\([0-9.]*\).*/\1/')
o=$(grep " amp " "$tmp/hubert_base.ours" | sed 's/.*ms=\([0-9.]*\).*/\1/')
echo "RESULT hubert_base ours amp vs torch fp32: speedup=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, after)"
