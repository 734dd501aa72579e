-- The allreduce of a flat gradient block on its own, for bench/bench_dist.sh: run under
-- `mpirun -n N`. For each model (CNN2D, CRNN, CNN1D; a fine-tuned Whisper encoder when its
-- weights are found) it builds the model, counts its trainable parameters and times R
-- allreduces of that many floats, uncompressed and as bf16. Prints (rank 0):
--   ALLREDUCE model=<m> params=<n> bytes=<4n> f32_ms=<median> bf16_ms=<median>
--   serlua bench/dist_allreduce.lua [--repeats R] [--whisper DIR]...
local ser = require "ser"
local argparse = require "argparse"
local T = ser.tensor

local p = argparse("dist_allreduce.lua", "Time the gradient allreduce alone (under mpirun).")
p:option("--repeats", "Allreduces timed per size.", "30"):convert(tonumber)
p:option("--whisper", "A Whisper encoder folder (fine-tuned whole); repeatable."):count("*")
local a = p:parse(arg)

local rank = ser.dist.init()
local now = require("ser.core.nn_cnn").monotonic

local function count(params)
  local n = 0
  for _, t in ipairs(params) do n = n + t:numel() end
  return n
end

local sizes = {}
for _, m in ipairs { "cnn2d", "crnn", "cnn1d" } do
  sizes[#sizes + 1] = { name = m, n = count(ser.models.create(m, { classes = 8 }):parameters()) }
end
for _, dir in ipairs(a.whisper) do
  local enc = ser.pretrained.load(dir)
  if enc then
    local name = "whisper:" .. (dir:match("([^/]+)/?$") or dir)
    sizes[#sizes + 1] = { name = name, n = count(enc:module{ finetune_layers = enc.config.layers }:parameters()) }
  end
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

for _, s in ipairs(sizes) do
  local buf = T.ones(s.n)
  local res = {}
  for _, mode in ipairs { "none", "bf16" } do
    ser.dist.allreduce(buf, mode)   -- warm-up (connections, buffers)
    local times = {}
    for r = 1, a.repeats do
      ser.dist.barrier()
      local t0 = now()
      ser.dist.allreduce(buf, mode)
      times[r] = (now() - t0) * 1000
    end
    res[mode] = median(times)
  end
  if rank == 0 then
    print(("ALLREDUCE model=%s params=%d bytes=%d f32_ms=%.3f bf16_ms=%.3f"):format(s.name, s.n, 4 * s.n, res.none,
      res.bf16))
  end
end
