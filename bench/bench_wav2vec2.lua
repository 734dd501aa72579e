-- serlua side of bench/bench_wav2vec2.sh: a wav2vec2-family encoder's forward (inference) on a
-- batch [B, seconds * 16000] of random audio, fp32 and amp (ser.set_amp: bf16 GEMMs), median wall
-- and CPU ms; and, with --ref, every hidden state on the clips of CLIPS against REF (the float64
-- PyTorch reference that bench_wav2vec2.py --make wrote).
--   build/serlua bench/bench_wav2vec2.lua DIR [--batch 4] [--seconds 4] [--repeats 5] [--ref CLIPS]
local ser = require "ser"
local T = ser.tensor
local argparse = require "argparse"
local clock = require("ser.core.nn_cnn").monotonic

local p = argparse("bench_wav2vec2.lua", "Time a wav2vec2-family encoder's forward; check it against a reference.")
p:argument("dir", "the model folder")
p:option("--batch", "clips per forward", "2"):convert(tonumber)
p:option("--seconds", "seconds per clip", "4"):convert(tonumber)
p:option("--repeats", "timed forwards per precision (after one warm-up)", "5"):convert(tonumber)
p:option("--ref", "clips (.safetensors) whose hidden states DIR/ref.safetensors holds")
local a = p:parse()

local enc = assert(ser.pretrained.load(a.dir))
local name = a.dir:match("([^/]+)/?$")

if a.ref then
  local clips, ref = assert(ser.load(a.ref)), assert(ser.load(a.dir .. "/ref.safetensors"))
  local worst = 0
  for i = 1, math.huge do
    local wav = clips["clip." .. i]
    if not wav then break end
    local hs = enc:hidden_states(enc:frontend(wav):view(1, -1))
    for l = 1, #hs do
      local want = ref[("hs.%d.%d"):format(i, l)]
      local e = (hs[l]:select(1, 1) - want):abs():max() / want:abs():max()
      worst = math.max(worst, e)
    end
  end
  print(("parity %s: %d layers, d %d: worst relative error over every hidden state %.3g"):format(name,
    enc.config.layers, enc.config.d_model, worst))
end

if a.repeats < 1 then return end
ser.manual_seed(7)
local x = T.randn(a.batch, math.floor(a.seconds * 16000)) * 0.1
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end
for _, prec in ipairs { "fp32", "amp" } do
  local prev = ser.set_amp(prec == "amp")
  local walls, cpus = {}, {}
  for r = 0, a.repeats do
    local t0, c0 = clock(), os.clock()
    local y = enc(x)
    local w, c = clock() - t0, os.clock() - c0
    assert(y:shape()[1] == a.batch)
    if r > 0 then walls[#walls + 1], cpus[#cpus + 1] = 1000 * w, 1000 * c end   -- run 0 warms up
  end
  ser.set_amp(prev)
  print(("ours %s %s ms=%.1f cpu=%.1f"):format(name, prec, median(walls), median(cpus)))
end
