-- What the Lua surfaces of the Whisper encoder (ser.pretrained) and of the wav2vec 2.0 / HuBERT /
-- WavLM encoders (ser.pretrained.wav2vec2) share over their bindings (ser.core.pretrained,
-- ser.core.wav2vec2: forward(enc, x, opts, want_hidden) -> out [, hidden], state_dict(enc)), so
-- that the two stay interchangeable for ser.data.embedding_cache and ser.frozen_encoder.
local T = require "ser.tensor"

local M = {}

-- A new encoder class (instances hold the binding's userdata as _enc) with forward, __call,
-- hidden_states, state_dict and __tostring over the binding core; each encoder adds the rest.
function M.class(core)
  local Encoder = {}
  Encoder.__index = Encoder

  -- core.forward with its errors raised at the caller of the Encoder method (level 3), as a
  -- direct call of a binding would raise them, not at this file's line.
  local function forward(enc, x, opts, hidden)
    local ok, out, hs = pcall(core.forward, enc, x, opts, hidden)
    if not ok then error((tostring(out):gsub("^[^:]*encoder%.lua:%d+: ", "")), 3) end
    return out, hs
  end

  -- x -> the last hidden state [B, frames, d_model] (after the final LayerNorm where the
  -- model has one).
  function Encoder:forward(x, opts)
    return (forward(self._enc, x, opts, false))
  end

  -- x -> layers + 1 tensors [B, frames, d_model]: the embeddings, then each block's output.
  function Encoder:hidden_states(x, opts)
    local _, hs = forward(self._enc, x, opts, true)
    return hs
  end

  -- Copies of the weights (float32) under their Hugging Face names.
  function Encoder:state_dict() return core.state_dict(self._enc) end

  Encoder.__call = Encoder.forward
  Encoder.__tostring = function(self) return tostring(self._enc) end
  return Encoder
end

-- Front-end outputs of several clips, each [lead..., n] with its own n, as the zero-padded batch
-- [B, lead..., longest] and their lengths n (ser.data.embedding_cache batches through this).
function M.batch(inputs, lead)
  local lengths, longest = {}, 0
  for b, x in ipairs(inputs) do
    lengths[b] = x:shape()[#lead + 1]
    longest = math.max(longest, lengths[b])
  end
  local dims = { #inputs }
  for _, d in ipairs(lead) do dims[#dims + 1] = d end
  dims[#dims + 1] = longest
  local x = T.zeros(table.unpack(dims))
  for b, m in ipairs(inputs) do x:select(1, b):narrow(#lead + 1, 1, lengths[b]):copy_(m) end
  return x, lengths
end

return M
