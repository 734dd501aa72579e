-- Our side of bench/bench_transformer.sh: forward time of the transformer ops
-- on Whisper-base shapes, inference (no_grad).
--   serlua bench/bench_transformer.lua --threads 1,2 --repeats 5 --batch 8 --frames 200 --dim 512 --heads 8
-- Prints "RESULT side=ours op=... prec=... threads=... ms=..." lines (medians):
--   attention         q, k, v [B, T, d], d/heads per head, no mask
--   attention_masked  the same with key lengths T, T-10, ..., (a padded batch)
--   layer_norm        [B, T, d]
--   gelu              [B, T, 4d] (the MLP's hidden layer)
-- prec fp32, and bf16 (ser.set_amp: attention's two products in bf16) when the CPU has AVX512-BF16.
local argparse = require "argparse"
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local clock = require("ser.core.nn_cnn").monotonic

local p = argparse("bench_transformer.lua", "Transformer op forward times (our side)")
p:option("--threads", "Thread counts, comma separated", "1,2")
p:option("--repeats", "Timed repeats (median reported)", "5")
p:option("--batch", "Batch size", "8")
p:option("--frames", "Sequence length T", "200")
p:option("--dim", "Model dim d", "512")
p:option("--heads", "Attention heads", "8")
local a = p:parse()
local B, Tn, d, H, R = tonumber(a.batch), tonumber(a.frames), tonumber(a.dim), tonumber(a.heads), tonumber(a.repeats)

local function median(v)
  table.sort(v)
  return v[(#v + 1) // 2]
end

-- Each result is dropped and collected before the next call, so its buffer
-- goes back to the allocator's cache: as in PyTorch (refcounts free at once),
-- the timed call reuses warm memory instead of faulting in fresh pages (a
-- first touch costs more than these ops on this VM).
local function timed(fn)
  local y = fn()
  local ms = {}
  for r = 1, R do
    y = nil
    collectgarbage()
    local t0 = clock()
    y = fn()
    ms[r] = 1000 * (clock() - t0)
  end
  return median(ms)
end

ser.manual_seed(1)
local q, k, v = T.randn(B, Tn, d), T.randn(B, Tn, d), T.randn(B, Tn, d)
local x, h = T.randn(B, Tn, d), T.randn(B, Tn, 4 * d)
local w, b = T.randn(d), T.randn(d)
local lengths = {}
for i = 1, B do lengths[i] = math.max(1, Tn - 10 * (i - 1)) end

local ops = {
  { "attention", function() return F.scaled_dot_product_attention(q, k, v, { heads = H }) end, true },
  { "attention_masked", function() return F.scaled_dot_product_attention(q, k, v, { heads = H, lengths = lengths }) end,
    true },
  { "layer_norm", function() return F.layer_norm(x, d, w, b, 1e-5) end },
  { "gelu", function() return F.gelu(h) end },
}

local precs = { "fp32" }
if require("ser.core.nn_cnn").bf16_supported() then precs[2] = "bf16" end
for th in a.threads:gmatch("%d+") do
  ser.set_num_threads(tonumber(th))
  for _, prec in ipairs(precs) do
    ser.set_amp(prec == "bf16")
    for _, op in ipairs(ops) do
      if prec == "fp32" or op[3] then
        local ms = ser.no_grad(function() return timed(op[2]) end)
        print(("RESULT side=ours op=%s prec=%s threads=%s ms=%.3f"):format(op[1], prec, th, ms))
      end
    end
  end
  ser.set_amp(false)
end
