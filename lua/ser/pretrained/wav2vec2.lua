-- ser.pretrained.wav2vec2: wav2vec 2.0, HuBERT and WavLM encoders (src/pretrained/wav2vec2.h) behind
-- the same surface as ser.pretrained's Whisper encoder, so a user swaps the encoder folder and
-- nothing else (docs/wav2vec2.md):
--   local enc = assert(ser.pretrained.load("models/wavlm-base-plus"))   -- folder or .safetensors
--   enc.config          --> { family = "wavlm", layers = 12, d_model = 768, heads = 12, ... }
--   local x = enc:frontend(wav)   -- 16 kHz waveform [N] -> [N] (z-scored when the config says do_normalize)
--   local y = enc(x2d, { lengths = { N1, N2, ... } })          -- [B, frames(N), d]: the last hidden state
--   local hs = enc:hidden_states(x2d, { lengths = { ... } })   -- L + 1 tensors [B, frames(N), d]
-- Lengths are in samples; rows past a clip's frames(length) are zero, and a clip's rows do not
-- depend on its batch.
local core = require "ser.core.wav2vec2"
local T = require "ser.tensor"
local common = require "ser.pretrained.encoder"

local M = {}

-- forward: [B, N] -> [B, frames(N), d], the last hidden state (pre-LN models: after the final
-- LayerNorm); hidden_states: layers + 1 tensors [B, frames(N), d], as Hugging Face's
-- output_hidden_states; state_dict: copies of the weights under their Hugging Face names,
-- without the family prefix (ser.pretrained.encoder).
local Encoder = common.class(core)

-- The encoder's input for a 16 kHz clip [N] (or each row of [B, N]): the waveform, z-scored per
-- clip when the model's preprocessor_config.json says do_normalize (see docs/wav2vec2.md).
function Encoder:frontend(wav)
  local sh = wav:shape()
  if #sh == 2 then
    local rows = {}
    for b = 1, sh[1] do rows[b] = core.frontend(self._enc, wav:select(1, b)):view(1, -1) end
    return T.cat(rows, 1)
  end
  local ok, y = pcall(core.frontend, self._enc, wav)
  if not ok then error((tostring(y):gsub("^[^:]*wav2vec2%.lua:%d+: ", "")), 2) end
  return y
end

-- Output frames for n input samples (a clip's valid rows).
function Encoder:output_frames(n) return core.frames(self._enc, n) end

-- Front-end outputs of several clips -> the zero-padded batch [B, Nmax] and lengths (samples).
function Encoder:batch(inputs) return common.batch(inputs, {}) end

function Encoder:module()
  error(("pretrained: fine-tuning (enc:module) is implemented for Whisper only, not %s"):format(self.config.family), 2)
end

-- Is path a wav2vec2-family checkpoint (by its tensor names)?
M.detect = core.detect

-- load(path) -> encoder, or nil and a message naming the missing tensor or disagreeing shape.
function M.load(path)
  local enc, err = core.load(path)
  if not enc then return nil, err end
  return setmetatable({ _enc = enc, config = core.config(enc) }, Encoder)
end

return M
