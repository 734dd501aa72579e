-- Times training steps of a whisper-family model with fine-tuned top blocks, from the frames cache
-- (model.finetune_from = "cache": only the top N blocks run) against the whole encoder from the
-- log-mel ("logmel"), in one process, interleaved step by step so that both see the same load:
--   build/serlua bench/whisper_cached_top_step.lua [--encoder DIR] [--data DIR] [--cache DIR]
--       [--head concat] [--layers 1,2] [--batch 32] [--steps 3] [--amp]
-- Each step: forward (with the training augmentation of its path), cross-entropy, backward, AdamW.
-- Prints the median CPU seconds (this process, all threads: os.clock) and wall seconds per step,
-- and the cache / logmel ratio. The clips are the first BATCH files of actor 1 (RAVDESS); the frames
-- cache must hold them or is filled (a miss encodes the clip). Not a test: on a shared machine the
-- wall time moves with the load (uptime is printed); CPU time is the steadier number.
local ser = require "ser"
local argparse = require "argparse"
local F = ser.nn.functional
local clock = require("ser.core.nn_cnn").monotonic

local p = argparse("whisper_cached_top_step.lua", "Fine-tuning step cost: from the frames cache vs the whole encoder.")
p:option("--encoder", "Whisper encoder folder.", "../shared/models/whisper-base")
p:option("--data", "RAVDESS folder (16 kHz).", "../shared/data/ravdess16k")
p:option("--cache", "Embedding cache folder (frames kind).", "/tmp/wacc/emb")
p:option("--head", "Head: concat, stats, superb, attentive, attentive_concat.", "concat")
p:option("--layers", "Comma-separated finetune_layers values.", "1,2")
p:option("--batch", "Clips per step.", "32")
p:option("--steps", "Timed steps per path (after one untimed).", "3")
p:flag("--amp", "bf16 GEMMs (ser.set_amp).")
local a = p:parse()

local corpus = ser.data.scan(a.data, { quiet = true })
local items = {}
for _, it in ipairs(corpus.items) do
  if #items < tonumber(a.batch) and tostring(it.speaker) == "1" then items[#items + 1] = it end
end
assert(#items > 0, "no clips of actor 1 in " .. a.data)
local classes = corpus.classes
local index = {}
for i, c in ipairs(classes) do index[c] = i end
local y = {}
for i, it in ipairs(items) do y[i] = index[it.label] end

local function median(v)
  table.sort(v)
  return v[(#v + 1) // 2]
end

local up = io.open("/proc/loadavg")
print(("load average at start: %s"):format(up and up:read("l") or "?"))
if up then up:close() end
print(("%s, head %s, batch %d, %s, SER_NUM_THREADS=%s"):format(a.encoder, a.head, #items, a.amp and "amp" or "fp32",
  os.getenv("SER_NUM_THREADS") or "(all)"))
local prev = ser.set_amp(a.amp)
for n in a.layers:gmatch("%d+") do
  local models, opt, x = {}, {}, {}
  for _, from in ipairs { "cache", "logmel" } do
    local r = ser.recipe.resolve { model = { name = "whisper", encoder = a.encoder, head = a.head, hidden = 512, dropout = 0.5,
      finetune_layers = tonumber(n), finetune_from = from, cache = a.cache }, data = { seconds = 8, trim = 30 } }
    ser.manual_seed(1)
    local m = ser.recipe.build_model(r, #classes)
    x[from] = m:features(items, { cache = a.cache })
    m:fit_standardisation(x[from])
    m:train()
    models[from] = m
    opt[from] = ser.optim.AdamW(m:param_groups(1e-3), { weight_decay = 1e-2 })
  end
  local cpu, wall = { cache = {}, logmel = {} }, { cache = {}, logmel = {} }
  for s = 0, tonumber(a.steps) do
    for _, from in ipairs { "cache", "logmel" } do
      local c0, w0 = os.clock(), clock()
      opt[from]:zero_grad()
      F.cross_entropy(models[from](x[from]), y):backward()
      opt[from]:step()
      if s > 0 then
        cpu[from][s], wall[from][s] = os.clock() - c0, clock() - w0
      end
    end
  end
  local cc, cl, wc, wl = median(cpu.cache), median(cpu.logmel), median(wall.cache), median(wall.logmel)
  print(("finetune_layers %s: cache %.2f s CPU (%.2f s wall) per step, logmel %.2f s CPU (%.2f s wall); "
    .. "logmel / cache = %.1fx CPU, %.1fx wall"):format(n, cc, wc, cl, wl, cl / cc, wl / wc))
end
ser.set_amp(prev)
