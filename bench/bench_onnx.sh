#!/usr/bin/env bash
# ONNX export: the time to export each default model (experiments/export.lua's work) and
# the latency of one 4-second clip's logits, ours (serlua's Lua model, no_grad) against
# onnxruntime-node running the exported file, both on one thread, in one invocation.
# Random weights (the time does not depend on their values); the input is the features
# (log-mel [1,1,64,251] or waveform [1,1,64000]), so feature extraction is not timed.
#   bench/bench_onnx.sh [--repeats 20]   (BUILD names the build folder, default build;
#   needs scripts/install-deps.sh --onnx for the onnxruntime column)
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
repeats=20
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "bench_onnx.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$BUILD/serlua" ] || { echo "bench_onnx.sh: $BUILD is not built (make)" >&2; exit 1; }
ort=${SER_ONNXRUNTIME:-$PWD/.deps/onnxruntime/node_modules}
NODE_PATH=$ort node -e 'require("onnxruntime-node")' 2>/dev/null || ort=""
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); threads 1 (SER_NUM_THREADS=1, onnxruntime intra-op 1)"
[ -n "$ort" ] && echo "onnxruntime-node $(NODE_PATH=$ort node -p 'require("onnxruntime-node/package.json").version')"
SER_NUM_THREADS=1 "$BUILD/serlua" - "$dir" "$repeats" "$ort" <<'LUA'
local ser = require "ser"
local T = ser.tensor
local dir, repeats, ort = arg[1], tonumber(arg[2]), arg[3]
local now = require("ser.train.progress").now
local classes = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }
local models = {
  { "cnn2d", {}, { 1, 1, 64, 251 } },
  { "crnn", {}, { 1, 1, 64, 251 } },
  { "crnn_best", { freq = "flatten", time = "stats", dropout = 0.3 }, { 1, 1, 64, 251 }, "crnn" },
  { "cnn1d", {}, { 1, 1, 64000 } },
  { "cnn1d_fb", { frontend = "filterbank" }, { 1, 1, 64000 }, "cnn1d" },   -- the default recipe's front end
}
print(("%-10s %10s %10s %12s %12s %8s"):format("model", "onnx MB", "export s", "ours ms", "ort ms", "ours/ort"))
for _, m in ipairs(models) do
  local name, o, shape = m[1], m[2], m[3]
  o.classes = 8
  ser.manual_seed(1)
  local model = ser.models.create(m[4] or name, o)
  model:eval()
  local ck, out = dir .. "/" .. name .. ".safetensors", dir .. "/" .. name .. ".onnx"
  ser.train.save_checkpoint(ck, model, classes, { seconds = 4, sr = 16000 }, 1, {})
  local info = assert(ser.onnx.export(ck, out))
  local x = T.randn(shape)
  ser.no_grad(function() return model(x) end)
  local t0 = now()
  for _ = 1, repeats do ser.no_grad(function() return model(x) end) end
  local ours = (now() - t0) / repeats * 1000
  local theirs
  if ort ~= "" then
    x:tofile(dir .. "/x.f32")
    local p = io.popen(("ONNX_RUN_REPEATS=%d NODE_PATH='%s' node tests/lua/helpers/onnx_run.js '%s' '%s/x.f32' %s '%s/y.f32'")
      :format(repeats, ort, out, dir, table.concat(shape, ","), dir))
    theirs = tonumber(p:read("a"):match('"ms":([%d.]+)'))
    p:close()
  end
  print(("%-10s %10.2f %10.3f %12.2f %12s %8s"):format(name, info.bytes / 1e6, info.seconds, ours,
    theirs and ("%.2f"):format(theirs) or "-", theirs and ("%.2f"):format(ours / theirs) or "-"))
end
LUA
