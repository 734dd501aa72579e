-- ser.pretrained.cached_top: the trainable top of a fine-tuned Whisper encoder, run from a cached
-- hidden state instead of the log-mel (docs/pretrained.md, "Fine-tuning from the frames cache").
--
-- With finetune_layers = N of L layers, the stem and blocks 1..K (K = L - N) are frozen, so the
-- input of block K + 1 is a fixed function of the clip: the encoder's hidden state K, which the
-- embedding cache's "frames" kind keeps (enc:hidden_states entry K + 1: the embeddings, then each
-- block's output before the final LayerNorm; float16 on disk). Running the top blocks from it
-- makes a step cost only those blocks' forward and backward.
--
--   local top = cached_top.forward(m, h, n)   -- m: enc:module{ finetune_layers = N } (N < L)
--       h [B, T, d]: hidden state K of the clips, zero-padded (rows from n[b] + 1 on are ignored)
--       n: each clip's frame count at the encoder's rate (ceil(log-mel frames / 2))
--       -> N tensors [B, T, d]: hidden states K + 1 .. L (block outputs, with their graph), rows
--          past n[b] zero, as m(x) gives them from the log-mel
--   local x = cached_top.time_mask(h, n, { count = 2, width = 10, generator = g })
--       time masking on cached frames (SpecAugment cannot reach a cached activation): each clip's
--       `count` spans of up to `width` frames (ser.augment.mask's sampling, inside the clip) are
--       replaced by the clip's own mean frame (per channel); a new tensor
--   local s = cached_top.pool(h, n)          -- [B, 2, d]: each clip's mean and population std over
--       its n[b] frames (two passes, differentiable), the pooled statistics of the embedding cache
local T = require "ser.core.tensor"
local base = require "ser.core.base"
local augment = require "ser.core.augment"

local M = {}

-- [B, T, 1] ones at rows <= n[b], zeros after.
function M.rows(n, Tn)
  local v = {}
  for b, k in ipairs(n) do
    local r = {}
    for t = 1, Tn do r[t] = { t <= k and 1 or 0 } end
    v[b] = r
  end
  return T.new(v)
end

local function check(m, h, n, fname)
  local s = T.is_tensor(h) and h:shape() or nil
  local c = m.config
  if not s or #s ~= 3 or s[3] ~= c.d_model then
    error(("%s: expected hidden states [B, T, %d], got %s"):format(fname, c.d_model,
      s and ("[" .. table.concat(s, ",") .. "]") or type(h)), 3)
  end
  if type(n) ~= "table" or #n ~= s[1] then
    error(("%s: expected %d frame counts (one per clip), got %s"):format(fname, s[1],
      type(n) == "table" and (#n .. " entries") or type(n)), 3)
  end
  for b, k in ipairs(n) do
    if math.type(k) ~= "integer" or k < 1 or k > s[2] then
      error(("%s: frame count of clip %d is %s, expected a whole number in 1..%d"):format(fname, b, tostring(k), s[2]), 3)
    end
  end
  return s
end

function M.forward(m, h, n)
  local c = m.config
  local L, N = c.layers, m.finetune_layers
  if N < 1 or N >= L then
    error(("cached_top.forward: the encoder module trains %d of %d blocks; running from a cached hidden state "
      .. "needs 1..%d (with all %d, the convolution stem trains too and needs the log-mel)"):format(N, L, L - 1, L), 2)
  end
  local s = check(m, h, n, "cached_top.forward")
  local rows = M.rows(n, s[2])
  local x = h * rows   -- the padding holds zeros whatever the caller left there, as the C encoder's rows
  local out = {}
  for l = L - N, L - 1 do
    x = m.layers[tostring(l)](x, n) * rows
    out[#out + 1] = x
  end
  return out
end

function M.time_mask(h, n, opts)
  opts = opts or {}
  local s = T.is_tensor(h) and h:shape() or nil
  if not s or #s ~= 3 or type(n) ~= "table" or #n ~= s[1] then
    error("cached_top.time_mask: expected hidden states [B, T, d] and one frame count per clip", 2)
  end
  local y = h:clone()
  base.no_grad(function()
    for b = 1, s[1] do
      local clip = y:select(1, b):narrow(1, 1, n[b])                        -- [n, d]
      local keep = augment.mask(T.ones(1, n[b]), { axis = "time", count = opts.count or 2,
        max_width = opts.width or 10, value = 0, p = opts.p, generator = opts.generator }):view(n[b], 1)
      local mean = clip:mean(1):view(1, s[3])
      clip:copy_(clip * keep + mean * (1 - keep))
    end
  end)
  return y
end

function M.pool(h, n)
  local s = h:shape()
  local B, Tn, d = s[1], s[2], s[3]
  local w = {}
  for b, k in ipairs(n) do
    local r = {}
    for t = 1, Tn do r[t] = t <= k and 1 / k or 0 end
    w[b] = { r }
  end
  w = T.new(w)                                               -- [B, 1, T]: 1/n on the clip's frames
  local mean = w:matmul(h)                                   -- [B, 1, d]
  local dev = (h - mean) * M.rows(n, Tn)                     -- padding rows stay out of the variance
  local var = w:matmul(dev * dev)
  -- the floor only keeps sqrt's gradient finite on a constant channel; it is far below any spread here
  return T.cat({ mean, var:clamp(1e-12, math.huge):sqrt() }, 2):view(B, 2, d)
end

return M
