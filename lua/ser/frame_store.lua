-- ser.frame_store: the clips of a frame-level head on a pretrained encoder (ser.frozen_encoder's
-- attentive heads), kept in memory by number. A frame-level model's input is [B, 1], the clips'
-- numbers here, because every layer's frame sequence of a corpus does not fit one tensor
-- (whisper-base over RAVDESS: ~2 GB as float32, clips of different lengths).
--
-- An entry is { frames = [L + 1, T, d] } (a frozen encoder's hidden states, from the embedding
-- cache's "frames" kind), or a fine-tuned model's inputs (ser.whisper_finetune's entries: a
-- cached hidden state or a log-mel, with the clip's source). Frames are standardised in place, once per set of
-- statistics (entry.stats names the set), which spares every batch the broadcast over
-- [L + 1, T, d] per clip. Also here: the frame statistics the standardisation takes (two passes)
-- and speaker normalisation of frame sequences.
local T = require "ser.tensor"

local M = {}

local Store = {}
Store.__index = Store

-- An empty store for clips of layers (L + 1) hidden states of width d.
function M.new(layers, d)
  return setmetatable({ layers = layers, d = d, n = 0, entries = {} }, Store)
end

-- Adds an entry; returns its number.
function Store:add(entry)
  self.n = self.n + 1
  self.entries[self.n] = entry
  return self.n
end

-- The entry of number id (any Lua value), nil when there is none.
function Store:get(id)
  local i = math.tointeger(id)
  return i and self.entries[i]
end

-- An entry's frames as read (undoing the standardisation it holds, if any).
function M.raw(e)
  return e.stats and e.frames * e.stats.s + e.stats.m or e.frames
end

-- The entry's frames standardised with st = { m, s } [L + 1, 1, d]: redone only when the entry
-- holds another set (the store keeps one copy of each clip).
function M.standardised(e, st)
  if e.stats ~= st then
    e.frames = ((M.raw(e) - st.m) / st.s):contiguous()
    e.stats = st
  end
  return e.frames
end

-- Clips [L + 1, T_b, d] zero-padded to Tmax into [L + 1, B, Tmax, d]. One buffer is reused batch
-- after batch: a fresh 50 MB tensor per batch (whisper-base, 32 clips) cost more in page faults
-- than the head's whole forward. Safe because a batch's input is read only until its backward,
-- which runs before the next batch is made.
function Store:padded(clips, lengths, Tmax)
  local L1, d = self.layers, self.d
  local n = L1 * #clips * Tmax * d
  if not self._buf or self._buf:numel() < n then self._buf = T.empty(n) end
  local out = self._buf:narrow(1, 1, n):view(L1, #clips, Tmax, d)
  out:zero_()
  -- layer by layer: each piece is contiguous on both sides (40x faster here than one strided copy)
  for b, f in ipairs(clips) do
    for l = 1, L1 do out:select(1, l):select(1, b):narrow(1, 1, lengths[b]):copy_(f:select(1, l)) end
  end
  return out
end

-- Mean and std [L + 1, d] of every frame of clips ([L + 1, T_i, d] each), std at least floor.
-- Two passes: Whisper's residual channels reach +-280, where a one-pass E[x^2] - E[x]^2 in
-- float32 loses the variance.
function M.statistics(clips, floor)
  local n, sum = 0, nil
  for _, f in ipairs(clips) do
    local s = f:sum(2)
    sum, n = sum and sum + s or s, n + f:shape()[2]
  end
  local m = sum / n
  local shape = m:shape()
  local sq
  for _, f in ipairs(clips) do
    local dev = f - m:view(shape[1], 1, shape[2])
    local s = (dev * dev):sum(2)
    sq = sq and sq + s or s
  end
  return m, (sq / n):sqrt():clamp(floor, math.huge)
end

-- The positions of each key: groups[k] = { i, ... } (keys compared as strings) and order, the
-- keys in order of first appearance (so results do not depend on table iteration).
function M.groups(keys)
  local groups, order = {}, {}
  for i, k in ipairs(keys) do
    k = tostring(k)
    if not groups[k] then groups[k] = {}; order[#order + 1] = k end
    table.insert(groups[k], i)
  end
  return groups, order
end

-- Speaker normalisation of frame sequences, in place: list[i] ([L + 1, T_i, d]) of speaker
-- speakers[i] z-scored per layer and channel with the mean and std over all that speaker's
-- frames in list (two passes, as M.statistics).
function M.speaker_normalise(list, speakers, floor)
  local groups, order = M.groups(speakers)
  for _, k in ipairs(order) do
    local sum, n
    for _, i in ipairs(groups[k]) do
      local s = list[i]:sum(2, true)
      sum, n = sum and sum + s or s, (n or 0) + list[i]:shape()[2]
    end
    local m = sum / n
    local sq
    for _, i in ipairs(groups[k]) do
      local dev = list[i] - m
      local s = (dev * dev):sum(2, true)
      sq = sq and sq + s or s
    end
    local sd = (sq / n):sqrt():clamp(floor, math.huge)
    for _, i in ipairs(groups[k]) do list[i] = (list[i] - m) / sd end
  end
end

return M
