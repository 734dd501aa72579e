-- The three reference architectures of the PyTorch notebook, layer for layer.
-- Module and parameter names equal the notebook's state_dict keys (CNN2D features.* /
-- classifier.*, CRNN cnn.* / rnn.* / head.0.*, CNN1D net.* / fc.2.*;
-- tests/lua/helpers/models_ref.py is the PyTorch side), so checkpoints carry across.
-- Checkpoints of earlier serlua versions, which named CRNN's and CNN1D's parts otherwise,
-- are renamed when loaded (ser.model_names).
-- Each model has embed(x): the penultimate representation, used for UMAP.
-- model.input names the features the model expects ("logmel" or "waveform").
local base = require "ser.core.base"
local core_features = require "ser.core.features"
local nn = require "ser.nn"
local F = require "ser.nn.functional"
local T = require "ser.core.tensor"
local ckpt = require "ser.core.checkpoint"
local loader = require "ser.data.loader"
local names = require "ser.model_names"

local models = {}

local function check_classes(name, o)
  o = o or {}
  if type(o) ~= "table" then error(("ser.models.%s: expected an options table, got %s"):format(name, type(o)), 3) end
  local c = o.classes
  if type(c) ~= "number" or c ~= math.floor(c) or c < 2 then
    error(("ser.models.%s: classes must be a whole number >= 2, got %s"):format(name, tostring(c)), 3)
  end
  return o
end

-- CNN2D on log-mel [B,1,64,T]: 4 x [Conv 3x3 -> BN -> ReLU -> MaxPool 2]
-- (the last block pools adaptively to 1x1), then a 2-layer classifier.
-- Options beyond the notebook's layers (recorded in checkpoints): freq = "flatten" pools
-- the last block to (8 frequency bands x 1) instead of 1x1, so the classifier sees where
-- in the spectrum each channel responds (Linear 256*8 -> 128; the parameter names stay);
-- time = "stats" summarises the last block over time by its mean and standard deviation
-- (statistics pooling: how much a channel's response varies across the clip, not only its
-- level; the classifier's first Linear takes twice the inputs).
local FREQ_BANDS = 8
-- A two-way option: nil or the notebook's value -> nil (nothing recorded in checkpoints, so
-- theirs stay as they were); the other value -> itself; anything else is an error.
local function variant(model, key, value, notebook, other)
  if value ~= nil and value ~= notebook and value ~= other then
    error(("ser.models.%s: %s must be \"%s\" or \"%s\", got %s"):format(model, key, notebook, other, tostring(value)), 3)
  end
  return value == other and other or nil
end
-- Statistics pooling (time = "stats" of all three models): the mean and sqrt(population
-- var + 1e-5) over dim, concatenated along dim 2. The floor keeps sqrt's gradient finite at
-- a constant sequence (ser.graph.describe emits the same: op std with eps 1e-5).
local function mean_std(h, dim)
  return T.cat({ h:mean(dim), (h:var(dim, { unbiased = false }) + 1e-5):sqrt() }, 2)
end
local CNN2D = nn.Module.class("CNN2D")
function CNN2D:init(o)
  o = check_classes("CNN2D", o)
  self.classes, self.input = o.classes, "logmel"
  self.freq = variant("CNN2D", "freq", o.freq, "mean", "flatten")
  self.time = variant("CNN2D", "time", o.time, "mean", "stats")
  local bands = self.freq and FREQ_BANDS or 1
  local layers, c_in = {}, 1
  for i, c in ipairs { 32, 64, 128, 256 } do
    for _, m in ipairs { nn.Conv2d(c_in, c, 3, { padding = 1 }), nn.BatchNorm2d(c), nn.ReLU(),
                         i < 4 and nn.MaxPool2d(2) or nil } do
      layers[#layers + 1] = m
    end
    c_in = c
  end
  -- The last pool has no parameters, so leaving it out of features keeps every name: with
  -- time = "stats" pooled() pools frequency to the bands and keeps time for the statistics.
  if not self.time then layers[#layers + 1] = nn.AdaptiveAvgPool2d(bands == 1 and 1 or { bands, 1 }) end
  self.bands = bands
  self:add_module("features", nn.Sequential(layers))
  self:add_module("classifier", nn.Sequential{ nn.Flatten(), nn.Dropout(0.3),
    nn.Linear(256 * bands * (self.time and 2 or 1), 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, o.classes) })
end
-- The last block's output pooled: [B,256,bands,1], or with time = "stats" [B,512,bands]
function CNN2D:pooled(x)
  local h = self.features(x)
  if not self.time then return h end
  -- 64 mels leave exactly 8 rows: pooling them to 8 bands would be a copy of 3 MB a step
  if h:size(3) ~= self.bands then h = F.adaptive_avg_pool2d(h, { self.bands, h:size(4) }) end
  return mean_std(h, 4)   -- [B,512,bands]
end
function CNN2D:forward(x)
  return self.classifier(self:pooled(x))
end
function CNN2D:embed(x)   -- [B,128]: the input of the last Linear
  local h = self:pooled(x)
  for i = 1, self.classifier:len() - 1 do h = self.classifier:get(i)(h) end
  return h
end
models.CNN2D = CNN2D

-- CRNN on log-mel [B,1,64,T]: 3 x [Conv 3x3 -> ReLU -> MaxPool 2] (cnn.0/3/6), mean over
-- frequency, BiLSTM over time (rnn), mean over time, Linear (head.0). Options beyond the
-- notebook's layers (off by default, recorded in checkpoints) keep those names for the
-- notebook's layers: batchnorm = true puts a BatchNorm2d after each convolution, held in
-- cnn_bn.0/1/2 (in PyTorch an nn.ModuleList beside the notebook's cnn Sequential);
-- dropout = p adds nn.Dropout(p) before the Linear (no parameters, so the names stay).
-- freq = "flatten" feeds the BiLSTM every channel at every remaining frequency (128 x mels/8
-- values per step, the usual CRNN) instead of their mean over frequency, which drops where in
-- the spectrum a pattern sits; time = "stats" summarises the BiLSTM outputs by their mean and
-- standard deviation over time (statistics pooling, Linear input 4 x hidden) instead of the
-- mean; feature_dropout = p adds nn.Dropout(p) on the convolutional features the BiLSTM
-- reads (its input at every step; no parameters either).
local CRNN = nn.Module.class("CRNN")
function CRNN:init(o)
  o = check_classes("CRNN", o)
  local hidden = o.hidden or 128
  local function probability(key)
    local p = o[key] or 0
    if type(p) ~= "number" or p < 0 or p >= 1 then
      error(("ser.models.CRNN: %s must be a probability in [0, 1), got %s"):format(key, tostring(o[key])), 3)
    end
    return p > 0 and p or nil
  end
  local dropout, feature_dropout = probability("dropout"), probability("feature_dropout")
  self.freq = variant("CRNN", "freq", o.freq, "mean", "flatten")
  self.time = variant("CRNN", "time", o.time, "mean", "stats")
  local mels = o.mels or 64
  if self.freq and (type(mels) ~= "number" or mels < 8 or mels % 8 ~= 0) then
    error(("ser.models.CRNN: freq = \"flatten\" needs mels, a multiple of 8, got %s"):format(tostring(o.mels)), 2)
  end
  self.classes, self.hidden, self.input = o.classes, hidden, "logmel"
  self.batchnorm, self.dropout, self.feature_dropout = o.batchnorm and true or nil, dropout, feature_dropout
  self.mels = self.freq and mels or nil
  local layers, norms, c_in = {}, {}, 1
  for _, c in ipairs { 32, 64, 128 } do
    for _, m in ipairs { nn.Conv2d(c_in, c, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2) } do layers[#layers + 1] = m end
    if self.batchnorm then norms[#norms + 1] = nn.BatchNorm2d(c) end
    c_in = c
  end
  self:add_module("cnn", nn.Sequential(layers))
  if self.batchnorm then self:add_module("cnn_bn", nn.Sequential(norms)) end
  local steps_in = self.freq and 128 * (mels // 8) or 128
  self:add_module("rnn", nn.LSTM(steps_in, hidden, { batch_first = true, bidirectional = true }))
  if self.feature_dropout then self:add_module("feature_drop", nn.Dropout(self.feature_dropout)) end
  if self.dropout then self:add_module("drop", nn.Dropout(self.dropout)) end
  self:add_module("head", nn.Sequential{ nn.Linear((self.time and 4 or 2) * hidden, o.classes) })
end
-- The convolutional blocks: the notebook's Sequential, or with batchnorm each block's
-- convolution, BatchNorm and ReLU (one fused op, as nn.Sequential runs them) and pool.
function CRNN:conv_features(x)
  if not self.cnn_bn then return self.cnn(x) end
  for b = 1, 3 do
    local conv, relu, pool, bn = self.cnn:get(3 * b - 2), self.cnn:get(3 * b - 1), self.cnn:get(3 * b), self.cnn_bn:get(b)
    x = conv(x)
    if nn.Sequential.fuses_with_relu(bn, relu) then
      x = bn:forward_relu(x)
    else
      x = relu(bn(x))
    end
    x = pool(x)
  end
  return x
end
-- [B,2*hidden] (the BiLSTM output averaged over time) or, with time = "stats",
-- [B,4*hidden] (its mean and standard deviation over time)
function CRNN:embed(x)
  if self.freq and (x:dim() ~= 4 or x:size(3) ~= self.mels) then
    error(("CRNN: built for [B,1,%d,T] log-mels (freq = \"flatten\" sizes the BiLSTM by them), got [%s]")
      :format(self.mels, table.concat(x:shape(), ",")), 2)
  end
  local f = self:conv_features(x)             -- [B,128,F,T]
  local steps
  if self.freq then
    local s = f:shape()
    steps = f:permute(1, 4, 2, 3):reshape { s[1], s[4], s[2] * s[3] }   -- [B,T,128*F]
  else
    steps = f:mean(3):permute(1, 3, 2)       -- [B,T,128]
  end
  if self.feature_drop then steps = self.feature_drop(steps) end
  local out = self.rnn(steps)                 -- [B,T,2H]
  if not self.time then return out:mean(2) end
  return mean_std(out, 2)
end
function CRNN:forward(x)
  local h = self:embed(x)
  if self.drop then h = self.drop(h) end
  return self.head(h)
end
models.CRNN = CRNN

-- CNN1D on the waveform [B,1,N]: 4 x [Conv1d k9 s2 p4 -> BN -> ReLU] and global average
-- pool (net.0/1/3/4/6/7/9/10), then Flatten, Dropout, Linear (fc.2).
-- Options beyond the notebook's layers (recorded in checkpoints):
-- time = "stats" pools by the mean and standard deviation over time instead of the mean (net
-- has no pool layer then; Linear 512 -> classes).
-- context_blocks = N appends N blocks to net after the fourth convolution, each
-- MaxPool1d(4) -> Conv1d(256, 256, 9, padding 4) -> BN -> ReLU (net.12 on). The notebook's
-- convolutions hear ~8 ms of audio at each output step (121 samples), shorter than a syllable
-- and barely a pitch period; each block quarters the time steps, so N = 2 hears ~180 ms for
-- 36 % more multiply-adds (N = 3: ~0.74 s, 38 %). The pools need inputs of at least 16 * 4^N - 15
-- samples.
-- frontend = "filterbank" replaces the first convolution by a learnt filterbank: 64 band-pass
-- filters of 257 taps (16 ms at 16 kHz) at stride 2, initialised as Hamming-windowed sinc
-- band-passes on the mel scale from 60 Hz to 7.6 kHz (as SincNet's, but every tap is then
-- learnt), each band's energy averaged over 10 ms and log-compressed, then BatchNorm: net.0
-- Conv1d, net.1 Square, net.2 AvgPool1d(80), net.3 Log(1e-6), net.4 BN. The four convolutions
-- (128, 128, 256, 256 channels) then run on 100 frames a second instead of 8000-1000 samples,
-- so each output step hears ~1.2 s, for about a quarter of the notebook layers' multiply-adds. Inputs
-- need at least 159 samples (one frame).
local CNN1D_CONTEXT_POOL = 4
local FILTERBANK = { bands = 64, taps = 257, stride = 2, frame = 80, fmin = 60, fmax = 7600, sr = 16000, eps = 1e-6 }

-- The filterbank's initial taps [bands][1][taps]: band-passes spaced on the (HTK) mel scale,
-- each the difference of two windowed sinc low-passes, scaled to unit energy.
local function sinc_bandpasses(fb)
  local mel, hz = core_features.hz_to_mel, core_features.mel_to_hz
  local m0, m1, w, half = mel(fb.fmin), mel(fb.fmax), {}, (fb.taps - 1) / 2
  for i = 1, fb.bands do
    local lo = hz(m0 + (m1 - m0) * (i - 1) / fb.bands) / fb.sr
    local hi = hz(m0 + (m1 - m0) * i / fb.bands) / fb.sr
    local taps, energy = {}, 0
    for t = 0, fb.taps - 1 do
      local x = t - half
      local function lowpass(fc) return x == 0 and 2 * fc or math.sin(2 * math.pi * fc * x) / (math.pi * x) end
      local v = (lowpass(hi) - lowpass(lo)) * (0.54 - 0.46 * math.cos(2 * math.pi * t / (fb.taps - 1)))
      taps[t + 1], energy = v, energy + v * v
    end
    for t = 1, fb.taps do taps[t] = taps[t] / math.sqrt(energy) end
    w[i] = { taps }
  end
  return w
end

-- The filterbank front end's layers (see above), its first convolution initialised.
local function filterbank_layers(fb)
  local conv = nn.Conv1d(1, fb.bands, fb.taps, { stride = fb.stride, padding = (fb.taps - 1) // 2 })
  base.no_grad(function()
    conv.weight:copy_(sinc_bandpasses(fb))
    conv.bias:zero_()
  end)
  return { conv, nn.Square(), nn.AvgPool1d(fb.frame), nn.Log(fb.eps), nn.BatchNorm1d(fb.bands) }
end
local CNN1D = nn.Module.class("CNN1D")
function CNN1D:init(o)
  o = check_classes("CNN1D", o)
  self.classes, self.input = o.classes, "waveform"
  self.time = variant("CNN1D", "time", o.time, "mean", "stats")
  self.frontend = variant("CNN1D", "frontend", o.frontend, "conv", "filterbank")
  local n_context = o.context_blocks or 0
  if type(n_context) ~= "number" or n_context ~= math.floor(n_context) or n_context < 0 or n_context == math.huge then
    error(("ser.models.CNN1D: context_blocks must be a whole number >= 0, got %s"):format(tostring(o.context_blocks)), 3)
  end
  -- 0 records nothing, so the notebook's checkpoints stay as they were
  self.context_blocks = n_context > 0 and math.tointeger(n_context) or nil
  if self.frontend and self.context_blocks then
    error("ser.models.CNN1D: context_blocks work on the convolutions' 1000 steps a second; the filterbank front "
      .. "end's 100 frames a second already give each output step ~1.2 s: use one or the other", 3)
  end
  local layers, c_in, widths = {}, 1, { 32, 64, 128, 256 }
  if self.frontend then
    layers = filterbank_layers(FILTERBANK)
    c_in, widths = FILTERBANK.bands, { 128, 128, 256, 256 }
  end
  for _, c in ipairs(widths) do
    for _, m in ipairs { nn.Conv1d(c_in, c, 9, { stride = 2, padding = 4 }), nn.BatchNorm1d(c), nn.ReLU() } do
      layers[#layers + 1] = m
    end
    c_in = c
  end
  for _ = 1, n_context do
    for _, m in ipairs { nn.MaxPool1d(CNN1D_CONTEXT_POOL), nn.Conv1d(256, 256, 9, { padding = 4 }), nn.BatchNorm1d(256),
                         nn.ReLU() } do
      layers[#layers + 1] = m
    end
  end
  if not self.time then layers[#layers + 1] = nn.AdaptiveAvgPool1d(1) end
  self:add_module("net", nn.Sequential(layers))
  self:add_module("fc", nn.Sequential{ nn.Flatten(), nn.Dropout(0.3), nn.Linear(self.time and 512 or 256, o.classes) })
end
-- [B,256,1], or with time = "stats" [B,512]
function CNN1D:pooled(x)
  -- the convolutions leave ceil(samples / 16) steps; the pools need 4^blocks of them
  local shortest = 16 * CNN1D_CONTEXT_POOL ^ (self.context_blocks or 0) - 15
  if self.context_blocks and x:size(x:dim()) < shortest then
    error(("ser.models.CNN1D: %d context blocks need at least %d samples of waveform, got %d")
      :format(self.context_blocks, math.tointeger(shortest), x:size(x:dim())), 3)
  end
  -- the filterbank's stride 2 leaves ceil(samples / 2) steps; its energy pool needs a frame of them
  local frame = FILTERBANK.stride * FILTERBANK.frame - 1
  if self.frontend and x:size(x:dim()) < frame then
    error(("ser.models.CNN1D: the filterbank front end needs at least %d samples of waveform (one 10 ms frame), "
      .. "got %d"):format(frame, x:size(x:dim())), 3)
  end
  local h = self.net(x)
  return self.time and mean_std(h, 3) or h
end
function CNN1D:forward(x)
  return self.fc(self:pooled(x))
end
function CNN1D:embed(x)   -- [B,256] (the pooled features; [B,512] with time = "stats")
  return self.fc:get(1)(self:pooled(x))
end
models.CNN1D = CNN1D

-- Lower-case names as used on the command line and in file names.
models.by_name = { cnn2d = CNN2D, crnn = CRNN, cnn1d = CNN1D }

-- ser.models.create("crnn", { classes = 8 }) with a clear error for unknown names.
function models.create(name, o)
  local cls = models.by_name[tostring(name):lower()]
  if cls == nil then
    error(("ser.models.create: unknown model '%s' (expected cnn2d, crnn or cnn1d)"):format(tostring(name)), 2)
  end
  return cls(o)
end

-- Model and metadata from a checkpoint written by ser.train (or compare.lua):
-- the architecture comes from meta.model / meta.classes / meta.hidden / meta.freq (and
-- CRNN's meta.batchnorm / meta.dropout / meta.feature_dropout / meta.time / meta.mels);
-- meta.features (the training features, read by ser.train.checkpoint.features) is
-- checked here too. A checkpoint without that metadata (a PyTorch .pt or safetensors file
-- of the notebook's models) is described from its tensor names and shapes, with class names
-- o.classes (default: RAVDESS's eight emotions for 8 outputs; ser.model_names.complete);
-- old serlua names are renamed (ser.model_names.migrate). Returns model, meta or nil, message.
function models.load(path, o)
  local sd, meta = ckpt.load(path)
  if not sd then return nil, meta end
  meta = meta or {}
  if meta.model == nil then
    local err
    meta, err = names.complete(sd, meta, o and o.classes)
    if not meta then return nil, ("%s: %s"):format(path, err) end
  end
  local name = meta.model
  if type(name) ~= "string" or not models.by_name[name:lower()] then
    return nil, ("%s: metadata names model '%s'; expected cnn2d, crnn or cnn1d"):format(path, tostring(name))
  end
  if type(meta.classes) ~= "table" or #meta.classes < 2 then
    return nil, ("%s: metadata has no class list (classes = %s)"):format(path, tostring(meta.classes))
  end
  local f = meta.features
  local kinds = loader.FEATURE_KINDS
  if f ~= nil and (type(f) ~= "table" or not (kinds[f.kind] or f.kind == "function")) then
    return nil, ("%s: metadata has features = %s; expected a table whose kind is waveform, logmel, mfcc or function")
      :format(path, type(f) == "table" and ("{kind = %s}"):format(tostring(f.kind)) or tostring(f))
  end
  local ok, model = pcall(models.create, name, { classes = #meta.classes, hidden = tonumber(meta.hidden),
    batchnorm = meta.batchnorm == true, dropout = tonumber(meta.dropout), feature_dropout = tonumber(meta.feature_dropout),
    freq = meta.freq, time = meta.time, mels = tonumber(meta.mels), context_blocks = tonumber(meta.context_blocks),
    frontend = meta.frontend })
  if not ok then return nil, ("%s: metadata describes no buildable model: %s"):format(path, tostring(model)) end
  local err
  ok, sd = pcall(names.migrate, name:lower(), sd)
  if not ok then return nil, ("%s: %s"):format(path, tostring(sd)) end
  ok, err = pcall(model.load_state_dict, model, sd)
  if not ok then return nil, ("%s: %s"):format(path, tostring(err)) end
  model:eval()
  return model, meta
end

return models
