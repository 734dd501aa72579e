-- Soak test (issue 6; not in CI): many feature extractions and train steps in one process,
-- sampling ser.memory() (bytes live in tensors/buffers) and the process RSS (/proc/self/statm),
-- to show that nothing grows after warm-up.
--
--   serlua scripts/soak.lua [--features N] [--steps N] [--model crnn|cnn2d|cnn1d] [--every N]
--
-- Prints one line per sample and a summary; exits 1 when, over the second half of each phase
-- (the first half is warm-up: allocator arenas, FFT plans, the OpenMP pool, Lua's heap
-- reaching their working size), live ser memory grows by more than 1 MB or RSS by more than
-- 8 MB.
local ser = require "ser"
local argparse = require "argparse"
local T, F = ser.tensor, ser.nn.functional

local p = argparse("soak.lua", "Memory soak: feature extractions and train steps in one process.")
p:option("--features", "Feature extractions (log-mel + MFCC of a 4 s clip).", "10000"):convert(tonumber)
p:option("--steps", "Train steps (forward, backward, AdamW step).", "1000"):convert(tonumber)
p:option("--model", "Model to train: cnn2d, crnn or cnn1d.", "crnn")
p:option("--every", "Sample memory every N iterations.", "100"):convert(tonumber)
local args = p:parse()
for _, k in ipairs{ "features", "steps", "every" } do
  if not args[k] or args[k] < 1 or args[k] ~= math.floor(args[k]) then p:error(("--%s must be a whole number >= 1"):format(k)) end
end
if not ser.models.by_name[args.model] then p:error("--model must be cnn2d, crnn or cnn1d") end

local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("^%d+%s+(%d+)")) * 4096
end
local MB = 1024 * 1024

-- Runs fn(i) n times, sampling; returns the samples {i, live, rss}.
local function phase(name, n, fn)
  local samples = {}
  local t0 = os.time()
  for i = 1, n do
    fn(i)
    if i % args.every == 0 or i == n then
      collectgarbage("collect")
      local live = ser.memory()
      samples[#samples + 1] = { i = i, live = live, rss = rss() }
      if #samples <= 3 or i % (args.every * 10) == 0 or i == n then
        print(("%-8s %6d/%d  ser live %8.2f MB  rss %8.2f MB"):format(name, i, n, live / MB, samples[#samples].rss / MB))
        io.stdout:flush()
      end
    end
  end
  -- Growth after warm-up: the first sample at or past half of the run is the baseline.
  local base
  for _, s in ipairs(samples) do if s.i >= n * 0.5 then base = s; break end end
  local max_live, max_rss = base.live, base.rss
  for _, s in ipairs(samples) do
    if s.i >= base.i then max_live, max_rss = math.max(max_live, s.live), math.max(max_rss, s.rss) end
  end
  local last = samples[#samples]
  local first = samples[1]
  local r = { name = name, n = n, seconds = os.time() - t0, live_growth = max_live - base.live,
              rss_growth = max_rss - base.rss, live_end = last.live, rss_end = last.rss, base_i = base.i }
  print(("%-8s done: %d in %d s; warm-up (%d..%d): ser live %.2f -> %.2f MB, rss %.2f -> %.2f MB; "
    .. "after warm-up (%d..%d): ser live +%.3f MB, rss +%.2f MB")
    :format(name, n, r.seconds, first.i, base.i, first.live / MB, base.live / MB, first.rss / MB, base.rss / MB,
      base.i, n, r.live_growth / MB, r.rss_growth / MB))
  return r
end

ser.manual_seed(1)
local sr = 16000
local wav = T.randn(4 * sr) * 0.1
local results = {}
results[1] = phase("features", args.features, function()
  local mel = ser.features.logmel(wav, { sr = sr, n_fft = 1024, hop = 256, n_mels = 64, fmin = 20, fmax = 7600 })
  local mfcc = ser.features.mfcc(wav, { sr = sr, n_mfcc = 40 })
  assert(mel:shape()[1] == 64 and mfcc:shape()[1] == 40)
end)

local model = ser.models.create(args.model, { classes = 8 })
model:train()
local opt = ser.optim.AdamW(model:parameters(), { lr = 1e-3, weight_decay = 1e-4 })
local x = args.model == "cnn1d" and T.randn(8, 1, sr) * 0.1 or T.randn(8, 1, 64, 63)
local y = T.new{ 1, 2, 3, 4, 5, 6, 7, 8 }
results[2] = phase("train", args.steps, function()
  opt:zero_grad()
  local loss = F.cross_entropy(model(x), y)
  loss:backward()
  opt:step()
  local v = loss:item()
  assert(v == v, "loss became NaN")
end)

local bad = false
for _, r in ipairs(results) do
  if r.live_growth > 1 * MB or r.rss_growth > 8 * MB then
    print(("soak: %s grew after warm-up (ser live +%.2f MB, rss +%.2f MB)"):format(r.name, r.live_growth / MB, r.rss_growth / MB))
    bad = true
  end
end
print(bad and "soak: FAILED" or "soak: no growth after warm-up")
os.exit(bad and 1 or 0)
