-- ser.whisper_finetune: the inputs of a WhisperClassifier (ser.frozen_encoder) whose encoder's top
-- blocks train (finetune_layers = N > 0); the classifier calls these when it holds an `encoder`
-- module. docs/pretrained.md, "Fine-tuning in the main job".
--
-- Two ways to reach the top blocks (model.finetune_from):
--   "cache" (default): the store keeps each clip's hidden state K = L - N from the embedding cache's
--     "frames" kind (float16 on disk) and the frozen layers' part of the head's input (pooled heads:
--     layers 0..K's mean and std; frame heads: their frames); a step runs only the top N blocks
--     (ser.pretrained.cached_top), with time masks on the cached frames while training.
--   "logmel": the store keeps each clip's log-mel and a step runs the whole encoder (the frozen
--     bottom in the C encoder, no graph), with SpecAugment on the log-mel while training. Needed
--     for N = L (the convolution stem trains).
-- Either way the head sees all L + 1 hidden states, the top N fine-tuned, and every one is
-- standardised with the *pretrained* encoder's statistics over the training clips (fixed when
-- training starts: fit_standardisation), so that the frozen layers' inputs are exactly those of a
-- frozen model and the fine-tuned ones start there and move with their blocks.
-- Pooled heads (superb, stats, concat) get [B, L + 1, 2, d]: per layer the mean and population std
-- over the clip's frames, recomputed differentiably for the fine-tuned layers; frame heads
-- (attentive, attentive_concat) get [L + 1, B, T, d] and the frame counts.
local T = require "ser.tensor"
local top = require "ser.pretrained.cached_top"

local M = {}

-- Refusals at construction (o: the classifier's options; enc: the loaded encoder).
function M.check(self, o, enc)
  local N = self.finetune_layers
  if self.speaker_norm then
    error(("whisper: finetune_layers = %d cannot be combined with speaker_norm: a speaker's statistics of the "
      .. "fine-tuned layers change with every step; train without speaker_norm"):format(N), 0)
  end
  if (self.settings.context or 0) > 0 then   -- the trained blocks would see the clip alone, not its window
    error(("whisper: finetune_layers = %d cannot be combined with model.context = %g: fine-tuning runs the top "
      .. "blocks on the clip's own frames, not on a %g s window; set model.context = 0"):format(N,
        self.settings.context, self.settings.context), 0)
  end
  if N > enc.config.layers then
    error(("whisper: finetune_layers = %d, but the encoder %s has %d layers"):format(N, o.encoder, enc.config.layers), 0)
  end
  local from = o.finetune_from or "cache"
  if from ~= "cache" and from ~= "logmel" then
    error(("whisper: finetune_from must be \"cache\" or \"logmel\", got %s"):format(tostring(from)), 0)
  end
  if from == "cache" and N == enc.config.layers then
    error(("whisper: finetune_layers = %d trains every block and the convolution stem, whose input is the log-mel, "
      .. "not a cached hidden state: set model.finetune_from = \"logmel\" (or fine-tune at most %d blocks)")
      :format(N, N - 1), 0)
  end
  return from
end

-- A list of `count` copies of v.
local function rep(v, count)
  local out = {}
  for i = 1, count do out[i] = v end
  return out
end

-- Adds the clips (sources as the embedding cache takes them) to the store; returns their numbers [N, 1].
-- "cache": an entry holds the clip's hidden state K [n, d] (float32, from the float16 file) and the
-- frozen layers' part of the head input: pooled [K + 1, 2, d] or frames [K + 1, n, d].
function M.add_clips(self, cache, enc, sources)
  local ids = {}
  if self.finetune_from == "logmel" then
    for i, src in ipairs(sources) do
      local mel = enc:frontend(type(src) == "table" and cache:clip(src.name, src.wav) or cache:clip(src))
      ids[i] = { self.store:add { mel = mel, source = src } }
    end
  else
    local K = self.config.layers - self.finetune_layers
    for i, f in ipairs(cache:frames(sources)) do
      local n = f:shape()[2]
      local frozen = f:narrow(1, 1, K + 1)
      local e = { source = sources[i], n = n, h = f:select(1, K + 1):contiguous() }
      e.frozen = self.frame_level and frozen:contiguous() or top.pool(frozen, rep(n, K + 1))
      ids[i] = { self.store:add(e) }
    end
  end
  return #ids > 0 and T.new(ids) or T.zeros(0, 1)
end

-- The store's entries of a batch of clip numbers x [B, 1].
local function entries(self, x)
  local s = x:shape()
  if #s ~= 2 or s[2] ~= 1 then
    error(("WhisperClassifier (fine-tuning): expected clip numbers [B, 1] (model:features(items) gives them), got [%s]")
      :format(table.concat(s, ",")), 4)
  end
  local out = {}
  for b, id in ipairs(x:view(-1):totable()) do
    out[b] = self.store:get(id)
    if not out[b] then
      error(("WhisperClassifier (fine-tuning): input %d is %s, not the number of a clip in the model's store (1..%d); "
        .. "its inputs are clip numbers from model:features(items), which cannot be mixed (mixup) or made up")
        :format(b, tostring(id), self.store.n), 4)
    end
  end
  return out
end

-- Zero-padded [B, Tmax, ...] of per-clip tensors along their first dim (dim: where time is).
local function pad(list, n, Tmax, dim)
  local s = list[1]:shape()
  s[dim] = Tmax
  table.insert(s, 1, #list)
  local out = T.zeros(table.unpack(s))
  for b, t in ipairs(list) do out:select(1, b):narrow(dim, 1, n[b]):copy_(t) end
  return out
end

-- The hidden states of a batch: hs (L + 1 tensors [B, T, d], the top N with their graph; with the
-- cache the frozen ones are nil) and the clips' frame counts at the encoder's rate.
local function hidden(self, es)
  local n, Tmax = {}, 0
  if self.finetune_from == "logmel" then
    local mels, len = {}, {}
    for b, e in ipairs(es) do mels[b], len[b] = e.mel, e.mel:shape()[2]; Tmax = math.max(Tmax, len[b]) end
    local x = pad(mels, len, Tmax, 2)
    if self.training and self.spec_augment then x = self.encoder:spec_augment(x, len) end
    for b, k in ipairs(len) do n[b] = (k + 1) // 2 end
    return (self.encoder(x, { lengths = len })), n
  end
  local hk = {}
  for b, e in ipairs(es) do hk[b], n[b] = e.h, e.n; Tmax = math.max(Tmax, e.n) end
  local x = pad(hk, n, Tmax, 1)
  if self.training and self.frame_masks > 0 then
    x = top.time_mask(x, n, { count = self.frame_masks, width = self.frame_mask_width })
  end
  local hs, K = {}, self.config.layers - self.finetune_layers
  for i, h in ipairs(top.forward(self.encoder, x, n)) do hs[K + 1 + i] = h end
  return hs, n
end

-- Concatenates tensors along dim (autograd's cat takes at most 8 differentiable tensors: groups of 8).
local function cat(parts, dim)
  while #parts > 1 do
    local merged = {}
    for i = 1, #parts, 8 do merged[#merged + 1] = T.cat(table.move(parts, i, math.min(i + 7, #parts), 1, {}), dim) end
    parts = merged
  end
  return parts[1]
end

-- The head's input for clip numbers x [B, 1], standardised: pooled heads [B, L + 1, 2, d]; frame heads
-- [L + 1, B, T, d] and the frame counts.
function M.input(self, x)
  local es = entries(self, x)
  local hs, n = hidden(self, es)
  local L1, d, B = self.layers, self.d, #es
  if self.frame_level then
    local parts = {}
    if not hs[1] then   -- the cache: the frozen layers' frames from the store
      local fr = {}
      for b, e in ipairs(es) do fr[b] = e.frozen end
      local Tmax = hs[L1]:shape()[2]
      parts[1] = pad(fr, n, Tmax, 2):permute(2, 1, 3, 4):contiguous()   -- [K + 1, B, T, d]
    end
    for l = 1, L1 do
      if hs[l] then parts[#parts + 1] = hs[l]:view(1, B, -1, d) end
    end
    local z = (cat(parts, 1) - self.feature_mean:view(L1, 1, 1, d)) / self.feature_std:view(L1, 1, 1, d)
    return z, n
  end
  local parts = {}
  if not hs[1] then
    local fr = {}
    for b, e in ipairs(es) do fr[b] = e.frozen end
    parts[1] = T.stack(fr, 1)                                 -- [B, K + 1, 2, d]
  end
  for l = 1, L1 do
    if hs[l] then parts[#parts + 1] = top.pool(hs[l], n):view(B, 1, 2, d) end
  end
  return (cat(parts, 2) - self.feature_mean:view(1, L1, 2, d)) / self.feature_std:view(1, L1, 2, d)
end

-- Sets the standardisation from the training clips' numbers x [N, 1]: the pretrained encoder's
-- statistics (the frames cache), per layer and channel over all frames (frame heads) or per pooled
-- feature over the clips (pooled heads). Two passes: Whisper's residual channels reach +-280.
function M.fit_standardisation(self, x, floor)
  local sources = {}
  for i, id in ipairs(x:view(-1):totable()) do sources[i] = self.store:get(id).source end
  local clips = self:cache():frames(sources)
  local L1, d = self.layers, self.d
  if self.frame_level then
    local sum, n = nil, 0
    for _, f in ipairs(clips) do
      local s = f:sum(2)
      sum, n = sum and sum + s or s, n + f:shape()[2]
    end
    local m = sum / n
    local sq
    for _, f in ipairs(clips) do
      local dev = f - m:view(L1, 1, d)
      local s = (dev * dev):sum(2)
      sq = sq and sq + s or s
    end
    self.feature_mean:copy_(m)
    self.feature_std:copy_((sq / n):sqrt():clamp(floor, math.huge))
    return
  end
  local rows = {}
  for i, f in ipairs(clips) do rows[i] = top.pool(f, rep(f:shape()[2], L1)):view(1, L1 * 2 * d) end
  local flat = T.cat(rows, 1)
  local m = flat:mean(1)
  local dev = flat - m:view(1, -1)
  self.feature_mean:copy_(m:view(L1, 2, d))
  self.feature_std:copy_((dev * dev):mean(1):sqrt():clamp(floor, math.huge):view(L1, 2, d))
end

return M
