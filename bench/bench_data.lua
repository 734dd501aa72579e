-- Data pipeline timings (serlua side of bench/bench_data.sh), wall clock:
--   synthetic   render a 480-clip 4 s corpus, 1 and 2 threads
--   scan        label the RAVDESS folder (../shared/data/ravdess16k)
--   decode      first epoch: decode + resample all train clips into memory (cache cleared)
--   epoch       per-epoch preparation of augmented log-mel batches (reference recipe:
--               gain, noise p=0.3, [pitch +-2 st p=0.3], 1 time + 1 freq mask), with and
--               without pitch shift, taken from the loader as a trainer would
--   overlap     CNN2D training steps over augmented batches: prefetch worker vs synchronous
-- Usage: serlua bench/bench_data.lua [DATA_DIR] [N_CLIPS]
local ser = require "ser"
local clock = require("ser.core.nn_cnn").monotonic
local argparse = require "argparse"
local parser = argparse("bench_data.lua", "Data pipeline timings (our side of bench/bench_data.sh)")
parser:argument("data_dir", "RAVDESS folder (a generated corpus when absent)", "../shared/data/ravdess16k")
parser:argument("n_clips", "training clips per epoch", "960"):convert(tonumber)
local opts = parser:parse(arg)
local dir, nclips = opts.data_dir, opts.n_clips

local function timed(fn)
  collectgarbage()
  local t0 = clock()
  local r = fn()
  return clock() - t0, r
end

print(("threads %d; %s"):format(ser.num_threads(), ser.blas_info()))
for _, nt in ipairs({ 1, 2 }) do
  ser.set_num_threads(nt)
  local t = timed(function() return ser.data.synthetic{ speakers = 20, per_class = 3, seconds = 4.0, seed = 1 } end)
  print(("synthetic  480 clips x 4 s, %d thread%s: %.2f s (%.0f clips/s)"):format(nt, nt > 1 and "s" or "", t, 480 / t))
end
ser.set_num_threads(0)

local corpus
local t = timed(function() corpus = ser.data.scan(dir) end)
local parts = {}
if corpus then
  print(("scan       %s: %d files in %.3f s"):format(dir, #corpus.items, t))
  local train = corpus:split{ train = { 1, 16 }, val = { 17, 20 }, quiet = true }
  local n = 0
  parts.train = train:subset(function() n = n + 1; return n <= nclips end, "train")
else
  print(("scan       %s absent: using the synthetic corpus written to a temp folder"):format(dir))
  local tmp = os.tmpname(); os.remove(tmp)
  ser.data.synthetic{ speakers = 16, per_class = math.ceil(nclips / 128), seconds = 4.0, out = tmp }
  parts.train = ser.data.scan(tmp)
end
local train = parts.train
print(("clips      %d"):format(#train.items))

if ser.audio.cache_clear then ser.audio.cache_clear() end
local L = ser.data.loader(train, { batch = 8, transform = "logmel" })
t = timed(function() return L:waveforms() end)
print(("decode     first epoch, decode + resample into memory: %.2f s (%.0f clips/s)"):format(t, #train.items / t))

local base = ser.data.reference_augment
local nopitch = { base[1], base[2] }
for _, case in ipairs({ { "no pitch", nopitch }, { "with pitch", base } }) do
  local A = ser.data.loader(train, { batch = 8, shuffle = true, seed = 1, transform = "logmel", augment = case[2],
    spec_augment = ser.data.reference_spec_augment })
  A.wav = L:waveforms()
  local e = timed(function() for _ in A:iter(1) do end end)
  print(("epoch      augmented log-mel batches, %s: %.2f s per epoch (%.0f clips/s)"):format(case[1], e, #train.items / e))
  if case[1] == "no pitch" then print(("RESULT ours_clips_per_s=%.3f"):format(#train.items / e)) end
  A:close()
end

-- Overlap: the same training steps fed by the worker (prefetch) and synchronously.
if ser.models and ser.models.CNN2D then
  local sub = train:subset(function(it) return it.y ~= nil end, "train")
  local nb = math.min(40, (#sub.items) // 8)
  local F = ser.nn.functional
  local function run(prefetch)
    ser.manual_seed(1)
    local model = ser.models.CNN2D{ classes = #train.classes }
    local opt = ser.optim.AdamW(model:parameters(), { lr = 1e-3 })
    local A = ser.data.loader(sub, { batch = 8, shuffle = true, seed = 1, transform = "logmel", augment = base,
      spec_augment = ser.data.reference_spec_augment, prefetch = prefetch, drop_last = true })
    A.wav = L:waveforms()
    model:train()
    local steps = 0
    local e = timed(function()
      for b in A:iter(1) do
        opt:zero_grad()
        F.cross_entropy(model(b.x), b.y):backward()
        opt:step()
        steps = steps + 1
        if steps >= nb then break end
      end
    end)
    A:close()
    return e / steps
  end
  run(true) -- warm-up: OpenMP pool, scratch buffers
  local p1, s1, p2, s2 = run(true), run(false), run(true), run(false)
  local p, s = math.min(p1, p2), math.min(s1, s2)
  print(("overlap    CNN2D train step + pitch-augmented batch: prefetch %.1f ms, synchronous %.1f ms per batch (%.2fx)")
    :format(1000 * p, 1000 * s, s / p))
end
