-- Times fine-tuning steps of a Whisper encoder (enc:module{ finetune_layers = N }) with a
-- SUPERB-style head (softmax layer weights -> mean over each clip's rows -> linear), on
-- real speech when ../shared/data/ravdess16k is there (else generated noise):
--   build/serlua bench/whisper_finetune_step.lua [MODEL] [FINETUNE_LAYERS] [BATCH] [SECONDS] [STEPS] [amp]
-- defaults: ../shared/models/whisper-tiny.en 2 8 4 3. Prints the frozen C forward alone, then
-- each step (SpecAugment + forward + backward + AdamW) and its parts. Not a comparison and not
-- a test; on a shared machine the numbers move with the load (uptime is printed).
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local clock = require("ser.core.nn_cnn").monotonic

local argparse = require "argparse"
local parser = argparse("whisper_finetune_step.lua", "Times fine-tuning steps of a Whisper encoder with a "
  .. "SUPERB-style head (not a comparison, not a test)")
parser:argument("model", "encoder folder", "../shared/models/whisper-tiny.en")
parser:argument("finetune_layers", "top blocks trained", "2"):convert(tonumber)
parser:argument("batch", "clips per step", "8"):convert(tonumber)
parser:argument("seconds", "clip length", "4"):convert(tonumber)
parser:argument("steps", "timed steps", "3"):convert(tonumber)
parser:argument("amp", "\"amp\" for bfloat16 GEMMs", ""):args("?")
local opts = parser:parse(arg)
local model, N, B, seconds, steps = opts.model, opts.finetune_layers, opts.batch, opts.seconds, opts.steps
local amp = opts.amp == "amp"

local enc = assert(ser.pretrained.load(model))
local c = enc.config
local frames = math.floor(seconds * 100)
local x = T.zeros(B, c.n_mels, frames)
local lengths, labels = {}, {}
local dir = "../shared/data/ravdess16k/Actor_01/"
local p = io.popen("ls " .. dir .. " 2>/dev/null")
local files = {}
for f in p:lines() do files[#files + 1] = f end
p:close()
for b = 1, B do
  local wav
  if files[b] then
    wav = ser.audio.load(dir .. files[b], { sr = 16000, mono = true })
  else
    wav = T.randn(frames * 160) * 0.1
  end
  local mel = enc:frontend(wav)
  local n = math.min(mel:shape()[2], frames)
  x:select(1, b):narrow(2, 1, n):copy_(mel:narrow(2, 1, n))
  lengths[b], labels[b] = n, (b - 1) % 8 + 1
end

local m = enc:module{ finetune_layers = N }
local L, d = c.layers, c.d_model
local layer_w = T.zeros(L + 1):requires_grad(true)
local head = ser.nn.Linear(d, 8)
local opt = ser.optim.AdamW({ { params = m:parameters(), lr = 1e-5 },
                             { params = { layer_w, table.unpack(head:parameters()) }, lr = 1e-3 } })
local inv = {}
for b = 1, B do inv[b] = { 1 / ((lengths[b] + 1) // 2) } end
inv = T.new(inv)

local u = io.popen("uptime"):read("l")
print(("%s, finetune_layers %d (%d trainable parameters of %d), batch %d x %.1f s, %d threads%s; %s"):format(
  model, N, m:num_parameters(), c.params, B, seconds, ser.num_threads(),
  amp and ", amp (bf16)" or "", u))
local prev = amp and ser.set_amp(true)
ser.reset_peak_memory()
local t0 = clock()
enc:hidden_states(x, { lengths = lengths })
print(("  frozen C forward of all %d layers (enc:hidden_states): %.3f s"):format(L, clock() - t0))
local g = ser.augment.generator(1)
for s = 1, steps do
  local t1 = clock()
  local xa = m:spec_augment(x, lengths, { generator = g })
  local t2 = clock()
  local hs = m(xa, { lengths = lengths })
  local w = layer_w:softmax(1)
  local mix = hs[1] * w:narrow(1, 1, 1)
  for i = 2, L + 1 do mix = mix + hs[i] * w:narrow(1, i, 1) end
  local loss = F.cross_entropy(head(mix:sum(2) * inv), labels)
  local t3 = clock()
  opt:zero_grad()
  loss:backward()
  local t4 = clock()
  opt:step()
  local t5 = clock()
  local _, peak = ser.memory()
  print(("  step %d: %.3f s (SpecAugment %.3f, forward %.3f, backward %.3f, AdamW %.3f), loss %.4f, peak tensor "
    .. "memory %.0f MB"):format(s, t5 - t1, t2 - t1, t3 - t2, t4 - t3, t5 - t4, loss:item(), peak / 1e6))
end
if amp then ser.set_amp(prev) end
