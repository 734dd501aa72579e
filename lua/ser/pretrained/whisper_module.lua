-- ser.pretrained.whisper_module: the Whisper encoder as a ser.nn module for
-- fine-tuning (docs/pretrained.md, "Fine-tuning"). Made by enc:module(opts):
--
--   local enc = assert(ser.pretrained.load("models/whisper-base"))
--   local m = enc:module{ finetune_layers = 2 }     -- the top 2 blocks (+ the final LayerNorm) train
--   local hs, last = m(x3d, { lengths = { T1, T2, ... } })  -- L + 1 tensors [B, ceil(T/2), d], and [B, ceil(T/2), d]
--   m:parameters()                                  -- the trainable tensors only (give them to the optimizer)
--   m:state_dict()                                  -- every tensor, WhisperEncoder's names: conv1.weight,
--                                                   --   layers.0.self_attn.q_proj.weight, ..., layer_norm.bias
--   m:encoder_state_dict()                          -- the same under enc:state_dict()'s "model.encoder." names
--   local x2 = m:spec_augment(x3d, lengths, { generator = g })  -- SpecAugment on the log-mel batch
--
-- finetune_layers = N (0..L): the stem (conv1, conv2) and the bottom L - N blocks are frozen and run
-- through the C encoder's inference forward (ser_whisper_encoder_forward_blocks: no graph, no copies of
-- their weights: the module's buffers are the encoder's own tensors); the top N blocks and the final
-- LayerNorm are parameters (copies of the encoder's weights, made here) run through the autograd ops. N = L also
-- trains the stem (conv1, conv2) in autograd; embed_positions stays frozen whatever N (a buffer, as
-- Hugging Face's WhisperEncoder freezes it). N = 0: nothing trains (the forward is the C encoder's).
-- Outputs follow the C encoder's padding rules exactly: frames past a clip's length are ignored,
-- conv1's output there is zeroed, keys past ceil(length / 2) are masked, and rows from ceil(length / 2)
-- on are zero in every hidden state, so a clip's outputs do not depend on its batch.
local Module = require "ser.nn.module"
local basic = require "ser.nn.basic"
local conv = require "ser.nn.conv"
local tr = require "ser.nn.transformer"
local F = require "ser.nn.functional"
local T = require "ser.core.tensor"
local base = require "ser.core.base"
local augment = require "ser.core.augment"
local core = require "ser.core.pretrained"

local M = {}

local PREFIX = "model.encoder."

-- A module that only holds frozen tensors (as buffers) and children: the
-- frozen part of the encoder, which never runs in Lua.
local Frozen = Module.class("Frozen")
function Frozen:forward()
  error("WhisperEncoder: a frozen part runs in the C encoder, not on its own", 2)
end
-- One line however deep: "Frozen(15 tensors, 49984 values)".
function Frozen:__tostring()
  local n, v = 0, 0
  for _, nb in ipairs(self:named_buffers()) do n, v = n + 1, v + nb[2]:numel() end
  return ("Frozen(%d tensors, %d values)"):format(n, v)
end

-- One pre-LayerNorm block in Hugging Face's names (WhisperEncoderLayer):
--   h = x + out_proj(attn(self_attn_layer_norm(x)));  y = h + fc2(gelu(fc1(final_layer_norm(h))))
local Layer = Module.class("WhisperEncoderLayer")
function Layer:init(d, heads, ffn)
  self:add_module("self_attn", tr.MultiheadAttention(d, heads, { k_bias = false }))
  self:add_module("self_attn_layer_norm", tr.LayerNorm(d))
  self:add_module("fc1", basic.Linear(d, ffn))
  self:add_module("fc2", basic.Linear(ffn, d))
  self:add_module("final_layer_norm", tr.LayerNorm(d))
end
function Layer:forward(x, lengths)
  local h = x + self.self_attn(self.self_attn_layer_norm(x), { lengths = lengths })
  return h + self.fc2(F.gelu(self.fc1(self.final_layer_norm(h))))
end

-- The blocks' container ("layers": children "0", "1", ...), as torch.nn.ModuleList.
local ModuleList = Module.class("ModuleList")
function ModuleList:forward()
  error("WhisperEncoder: layers are run by the encoder's forward", 2)
end

local Stem = {} -- conv1 / conv2 when trainable: nn.Conv1d with Whisper's settings
function Stem.conv1(m, d) return conv.Conv1d(m, d, 3, { padding = 1 }) end
function Stem.conv2(d) return conv.Conv1d(d, d, 3, { stride = 2, padding = 1 }) end

local WhisperEncoder = Module.class("WhisperEncoder")

-- Puts `t` as a frozen buffer at the dotted path `name` under `root`, making
-- Frozen children on the way.
local function put_frozen(root, name, t)
  local parts = {}
  for p in name:gmatch("[^.]+") do parts[#parts + 1] = p end
  local m = root
  for i = 1, #parts - 1 do
    local child = rawget(m, parts[i])
    if child == nil then child = m:add_module(parts[i], Frozen()) end
    m = child
  end
  m:register_buffer(parts[#parts], t)
end

-- Copies own[prefix .. name] (the encoder's tensor) into every parameter of `mod`.
local function fill(mod, own, prefix)
  for _, np in ipairs(mod:named_parameters()) do
    local src = own[PREFIX .. prefix .. np[1]]
    assert(src, "WhisperEncoder: the encoder has no tensor " .. PREFIX .. prefix .. np[1])
    base.no_grad(function() np[2]:copy_(src) end)
  end
end

-- enc: a ser.pretrained Whisper encoder (its Lua object); opts.finetune_layers (0..L, default 0).
function WhisperEncoder:init(enc, opts)
  if type(opts) ~= "table" and opts ~= nil then
    error(("WhisperEncoder: options must be a table, got %s"):format(type(opts)), 3)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "finetune_layers" then
      error(("WhisperEncoder: unknown option '%s' (known: finetune_layers)"):format(tostring(k)), 3)
    end
  end
  local c = enc.config
  local L = c.layers
  local N = opts.finetune_layers or 0
  if math.type(N) ~= "integer" or N < 0 or N > L then
    error(("WhisperEncoder: finetune_layers must be a whole number in 0..%d (the encoder's layers), got %s"):format(
      L, tostring(opts.finetune_layers)), 3)
  end
  rawset(self, "config", c)
  rawset(self, "finetune_layers", N)
  rawset(self, "_encoder", enc) -- keeps the C encoder (and so the frozen weights' owner) alive
  rawset(self, "_enc", enc._enc)
  local own = core.weights(enc._enc) -- the encoder's own tensors (frozen buffers share them)
  local function frozen(name) put_frozen(self, name, own[PREFIX .. name]) end
  local K = L - N
  -- Hugging Face's registration order: conv1, conv2, embed_positions, layers, layer_norm
  if N == L then
    self:add_module("conv1", Stem.conv1(c.n_mels, c.d_model))
    self:add_module("conv2", Stem.conv2(c.d_model))
    fill(self.conv1, own, "conv1.")
    fill(self.conv2, own, "conv2.")
  else
    for _, n in ipairs { "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias" } do frozen(n) end
  end
  frozen("embed_positions.weight")
  local layers = self:add_module("layers", ModuleList())
  for l = 0, L - 1 do
    if l < K then
      local p = "layers." .. l .. "."
      -- the block's tensors in WhisperEncoderLayer's order
      for _, n in ipairs { "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                           "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.out_proj.weight",
                           "self_attn.out_proj.bias", "self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
                           "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "final_layer_norm.weight",
                           "final_layer_norm.bias" } do
        frozen(p .. n)
      end
    else
      local layer = layers:add_module(tostring(l), Layer(c.d_model, c.heads, c.ffn_dim))
      fill(layer, own, "layers." .. l .. ".")
    end
  end
  if N > 0 then
    self:add_module("layer_norm", tr.LayerNorm(c.d_model))
    fill(self.layer_norm, own, "layer_norm.")
  else
    frozen("layer_norm.weight")
    frozen("layer_norm.bias")
  end
  -- every encoder tensor has a place
  local n_own, n_here = 0, #self:state_dict_keys()
  for _ in pairs(own) do n_own = n_own + 1 end
  assert(n_own == n_here, ("WhisperEncoder: %d encoder tensors, the module holds %d"):format(n_own, n_here))
end

function WhisperEncoder:extra_repr()
  local c = self.config
  return ("layers=%d, d_model=%d, heads=%d, n_mels=%d, finetune_layers=%d"):format(c.layers, c.d_model, c.heads,
    c.n_mels, self.finetune_layers)
end

-- A shape as text.
local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

-- Checks x [B, n_mels, T] and the lengths (a list of B frame counts, each in 1..T; nil: all T).
local function check_input(self, x, lengths)
  local c = self.config
  local s = T.is_tensor(x) and x:shape() or nil
  if not s or #s ~= 3 or s[2] ~= c.n_mels then
    error(("WhisperEncoder: expected a log-mel batch [B, %d, T] (%d mel bins), got %s"):format(c.n_mels, c.n_mels,
      s and shape_str(s) or type(x)), 3)
  end
  local B, Tn = s[1], s[3]
  if Tn > c.max_frames then
    error(("WhisperEncoder: input of %d frames (%.2f s) is longer than Whisper's %d s window (at most %d frames); "
      .. "split the audio"):format(Tn, Tn / 100, c.max_frames // 100, c.max_frames), 3)
  end
  local len = {}
  if lengths == nil then
    for b = 1, B do len[b] = Tn end
  else
    if type(lengths) ~= "table" then
      error(("WhisperEncoder: option 'lengths' must be a list of frame counts, got %s"):format(type(lengths)), 3)
    end
    if #lengths ~= B then
      error(("WhisperEncoder: 'lengths' has %d entries, the batch %s has %d clips"):format(#lengths, shape_str(s), B), 3)
    end
    for b = 1, B do
      local v = lengths[b]
      if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > Tn then
        error(("WhisperEncoder: length of clip %d is %s frames, expected 1..%d (the input's frames)"):format(b,
          tostring(v), Tn), 3)
      end
      len[b] = math.tointeger(v)
    end
  end
  return B, Tn, len
end

-- [B, n, 1] (rows) or [B, 1, n] (columns) of ones at positions < valid[b], zeros after.
local function mask(valid, n, rows)
  local B = #valid
  local v = {}
  for b = 1, B do
    local r = {}
    for t = 1, n do r[t] = t <= valid[b] and 1 or 0 end
    v[b] = r
  end
  local m = T.new(v)
  return rows and m:view(B, n, 1) or m:view(B, 1, n)
end

-- forward(x [B, n_mels, T], { lengths = {...} }) -> hs, last:
--   hs   L + 1 tensors [B, ceil(T/2), d]: the embeddings, then each block's output (as enc:hidden_states);
--        those of the frozen part carry no graph, those of the trainable blocks do
--   last [B, ceil(T/2), d]: the final LayerNorm of the last block's output (as enc(x))
-- Rows from ceil(lengths[b] / 2) on are zero in every tensor.
function WhisperEncoder:forward(x, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("WhisperEncoder: options must be a table, got %s"):format(type(opts)), 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "lengths" then error(("WhisperEncoder: unknown option '%s' (known: lengths)"):format(tostring(k)), 2) end
  end
  local lengths = opts and opts.lengths
  local B, Tn, len = check_input(self, x, lengths)
  local c = self.config
  local L, N = c.layers, self.finetune_layers
  local K = L - N
  local T2 = (Tn + 1) // 2
  local klen = {}
  for b = 1, B do klen[b] = (len[b] + 1) // 2 end
  local rows = mask(klen, T2, true)
  local hs
  if N < L then
    -- the frozen stem and blocks 1..K: the C encoder's inference forward (no graph)
    local _
    _, hs = core.forward(self._enc, x, { lengths = len }, true, K)
  else
    -- the stem in autograd, with the C encoder's padding rules
    local cols = mask(len, Tn, false)
    local xin = x * cols -- frames past the length are ignored, whatever the padding holds
    local c1 = F.gelu(F.conv1d(xin, self.conv1.weight, self.conv1.bias, { padding = 1 })) * cols
    local c2 = F.gelu(F.conv1d(c1, self.conv2.weight, self.conv2.bias, { stride = 2, padding = 1 }))
    local h = c2:permute(1, 3, 2):contiguous() + self.embed_positions.weight:narrow(1, 1, T2)
    hs = { h * rows }
  end
  local h = hs[K + 1]
  for l = K, L - 1 do
    h = self.layers[tostring(l)](h, klen) * rows
    hs[#hs + 1] = h
  end
  local last = F.layer_norm(h, c.d_model, self.layer_norm.weight, self.layer_norm.bias, 1e-5) * rows
  return hs, last
end

-- The module's tensors under the encoder's names ("model.encoder.conv1.weight", ...), as
-- enc:state_dict() gives them (these are the module's own tensors, not copies).
function WhisperEncoder:encoder_state_dict()
  local out = {}
  for k, v in pairs(self:state_dict()) do out[PREFIX .. k] = v end
  return out
end

-- load_state_dict(sd [, opts]): sd with WhisperEncoder's names or the encoder's
-- ("model.encoder." prefix, as enc:state_dict() or encoder_state_dict()). The
-- frozen tensors are the C encoder's weights: they must equal the checkpoint's
-- (a checkpoint fine-tuned from another encoder, or with more finetune_layers, is
-- refused and nothing is loaded); the trainable ones are copied in.
function WhisperEncoder:load_state_dict(sd, opts)
  if type(sd) ~= "table" then
    error(("WhisperEncoder:load_state_dict: expected a table of name -> tensor, got %s"):format(type(sd)), 2)
  end
  local plain, prefixed = {}, false
  for k in pairs(sd) do
    if type(k) == "string" and k:sub(1, #PREFIX) == PREFIX then prefixed = true break end
  end
  for k, v in pairs(sd) do
    if prefixed and type(k) == "string" and k:sub(1, #PREFIX) == PREFIX then plain[k:sub(#PREFIX + 1)] = v
    elseif not prefixed then plain[k] = v end
  end
  local differ = {}
  for _, nb in ipairs(self:named_buffers()) do
    local src = plain[nb[1]]
    if T.is_tensor(src) and table.concat(src:shape(), ",") == table.concat(nb[2]:shape(), ",") then
      local d = base.no_grad(function() return (src - nb[2]):abs():max() end)
      if d ~= 0 then differ[#differ + 1] = ("%s (max |difference| %.3g)"):format(nb[1], d) end
    end
  end
  if #differ > 0 then
    error(("WhisperEncoder:load_state_dict: %d frozen tensor(s) differ from the encoder's (finetune_layers = %d), "
      .. "nothing was loaded: %s; load the encoder the checkpoint was fine-tuned from, or build the module with "
      .. "more finetune_layers"):format(#differ, self.finetune_layers, table.concat(differ, ", ")), 2)
  end
  return Module.load_state_dict(self, plain, opts)
end

-- SpecAugment on a Whisper log-mel batch x [B, n_mels, T] (a new tensor; x is not changed), clip by
-- clip inside each clip's length: time masks land on frames 1..lengths[b] only. opts:
--   time_masks (2), time_width (20 frames = 0.2 s), freq_masks (2), freq_width (10 bins),
--   value: 0 (default) or "mean" (the clip's mean over its frames), p (1), generator (ser.augment.generator).
-- 0 is Hugging Face's choice (WhisperModel._mask_input_features); after Whisper's (x + 4) / 4 it is
-- log10 power -4, inside the range of speech, where the clip's floor (max - 8 dB, silence) would be at
-- (max - 4) / 4. The masks are ser.augment.mask (torchaudio's sampling).
function WhisperEncoder:spec_augment(x, lengths, opts)
  return M.spec_augment(x, lengths, opts, "WhisperEncoder:spec_augment")
end

local SA_KEYS = { time_masks = true, time_width = true, freq_masks = true, freq_width = true, value = true, p = true,
                  generator = true }

function M.spec_augment(x, lengths, opts, fname)
  fname = fname or "spec_augment"
  opts = opts or {}
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not SA_KEYS[k] then
      local names = {}
      for n in pairs(SA_KEYS) do names[#names + 1] = n end
      table.sort(names)
      error(("%s: unknown option '%s' (known: %s)"):format(fname, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  local s = T.is_tensor(x) and x:shape() or nil
  if not s or #s ~= 3 then
    error(("%s: expected a log-mel batch [B, n_mels, T], got %s"):format(fname, s and shape_str(s) or type(x)), 3)
  end
  local B, Tn = s[1], s[3]
  if lengths ~= nil and (type(lengths) ~= "table" or #lengths ~= B) then
    error(("%s: lengths must be a list of %d frame counts (one per clip), got %s"):format(fname, B,
      type(lengths) == "table" and (#lengths .. " entries") or type(lengths)), 3)
  end
  local value = opts.value or 0
  if value ~= "mean" and type(value) ~= "number" then
    error(("%s: value must be a number or \"mean\", got %s"):format(fname, tostring(value)), 3)
  end
  local y = x:clone()
  base.no_grad(function()
    for b = 1, B do
      local n = lengths and lengths[b] or Tn
      if math.type(n) ~= "integer" or n < 1 or n > Tn then
        error(("%s: lengths[%d] is %s, expected a whole number in 1..%d"):format(fname, b, tostring(n), Tn), 4)
      end
      local clip = y:select(1, b):narrow(2, 1, n)
      local v = value == "mean" and clip:mean():item() or value
      local m = augment.mask(clip, { axis = "time", count = opts.time_masks or 2, max_width = opts.time_width or 20,
                                     value = v, p = opts.p, generator = opts.generator })
      m = augment.mask(m, { axis = "freq", count = opts.freq_masks or 2, max_width = opts.freq_width or 10,
                            value = v, p = opts.p, generator = opts.generator })
      clip:copy_(m)
    end
  end)
  return y
end

M.WhisperEncoder = WhisperEncoder
M.WhisperEncoderLayer = Layer

-- module(enc, opts) -> a WhisperEncoder module over the loaded encoder `enc`.
function M.module(enc, opts)
  return WhisperEncoder(enc, opts)
end

return M
