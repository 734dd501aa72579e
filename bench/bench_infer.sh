#!/usr/bin/env bash
# Latency and throughput (clips/s) of the C inference API, ser_model_predict, per model on one
# thread (bench/bench_infer.c): checkpoints of the default models written by ser.train.checkpoint
# (random weights: the time does not depend on their values) and, when an encoder folder is
# there (models/whisper-base or ../shared/models/whisper-base), the whisper family's default, at
# clip length and inside Whisper's 30 s window (model.context = 30).
#   bench/bench_infer.sh [--repeats 20] [--threads 1]   (BUILD names the build folder, default build)
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
repeats=20 threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "bench_infer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$BUILD/libser.a" ] && [ -x "$BUILD/serlua" ] || { echo "bench_infer.sh: $BUILD is not built (make)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
enc=""
for e in models/whisper-base ../shared/models/whisper-base; do [ -f "$e/model.safetensors" ] && { enc=$e; break; }; done
"$BUILD/serlua" - "$dir" "$enc" <<'LUA'
local ser = require "ser"
local dir, enc = arg[1], arg[2]
local classes = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }
local function save(name, model, o, feats)
  ser.train.save_checkpoint(dir .. "/" .. name .. ".safetensors", model, classes, o, 1, { features = feats })
end
local logmel = { kind = "logmel", n_mels = 64 }
save("cnn2d", ser.models.create("cnn2d", { classes = 8 }), { seconds = 4, sr = 16000 }, logmel)
save("crnn", ser.models.create("crnn", { classes = 8 }), { seconds = 4, sr = 16000 }, logmel)
save("crnn_best", ser.models.create("crnn", { classes = 8, freq = "flatten", time = "stats", dropout = 0.3 }),
  { seconds = 4, sr = 16000 }, logmel)
save("cnn1d", ser.models.create("cnn1d", { classes = 8 }), { seconds = 4, sr = 16000 }, { kind = "waveform", normalize = true })
save("cnn1d_filterbank", ser.models.create("cnn1d", { classes = 8, frontend = "filterbank" }), { seconds = 4, sr = 16000 },
  { kind = "waveform", normalize = true })
if enc ~= "" then
  local r = ser.recipe.resolve("experiments/recipes/whisper.lua", { ser.recipe.parse_set("model.encoder=" .. enc) })
  save("whisper", ser.recipe.build_model(r, 8), { seconds = 8, sr = 16000, meta = { recipe = ser.recipe.to_meta(r) } })
  -- the same head with each clip encoded inside Whisper's 30 s window (model.context)
  r = ser.recipe.resolve("experiments/recipes/whisper.lua", { ser.recipe.parse_set("model.encoder=" .. enc),
    ser.recipe.parse_set("model.context=30") })
  save("whisper_window", ser.recipe.build_model(r, 8), { seconds = 8, sr = 16000, meta = { recipe = ser.recipe.to_meta(r) } })
end
LUA
bin=$dir/bench_infer
cc -O2 -fopenmp -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_infer.c "$BUILD/libser.a" \
  $(pkg-config --libs sndfile fftw3f soxr libcjson libzip) -lopenblas -lm -o "$bin"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); threads: $threads; load: $(cut -d' ' -f1-3 /proc/loadavg)"
ckpts=("$dir"/cnn2d.safetensors "$dir"/crnn.safetensors "$dir"/crnn_best.safetensors "$dir"/cnn1d.safetensors
       "$dir"/cnn1d_filterbank.safetensors)
[ -n "$enc" ] && ckpts+=("$dir"/whisper.safetensors "$dir"/whisper_window.safetensors) || echo "(no Whisper encoder folder: the whisper row is left out)"
SER_NUM_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$bin" "$repeats" "${ckpts[@]}"
