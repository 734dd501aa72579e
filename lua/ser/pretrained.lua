-- ser.pretrained: pretrained speech encoders built in the C core from their
-- checkpoints (src/pretrained/; docs/pretrained.md). Whisper here; wav2vec 2.0, HuBERT and WavLM
-- in ser.pretrained.wav2vec2 (docs/wav2vec2.md), which load() picks by the file's tensor names:
--   local enc = assert(ser.pretrained.load("models/whisper-base"))  -- folder or .safetensors
--   enc.config                   --> { family = "whisper", layers = 6, d_model = 512, heads = 8, n_mels = 80, ... }
--   local x = enc:frontend(wav)  -- 16 kHz waveform [N] -> log-mel [n_mels, N // 160] ([B, N] -> [B, n_mels, N // 160])
--   local y = enc(x3d, { lengths = { T1, T2, ... } })           -- [B, ceil(T/2), d] after the final LayerNorm
--   local hs = enc:hidden_states(x3d, { lengths = { ... } })    -- L + 1 tensors [B, ceil(T/2), d]
--   enc:state_dict()             --> { ["model.encoder.conv1.weight"] = tensor, ... } (copies)
--   local m = enc:module{ finetune_layers = 2 }  -- an nn module: the top 2 blocks train (whisper_module.lua)
-- A batch is zero-padded to its longest clip; lengths are in input frames (10 ms).
-- Rows past a clip's ceil(length / 2) are zero, and a clip's rows do not depend on its batch.
local core = require "ser.core.pretrained"
local features = require "ser.core.features"
local common = require "ser.pretrained.encoder"

local M = {}

-- forward: [B, n_mels, T] -> [B, ceil(T/2), d_model] after the final LayerNorm; hidden_states:
-- layers + 1 tensors [B, ceil(T/2), d_model], the embeddings (convolutions + positions), then
-- each block's output (before the final norm); state_dict: { ["model.encoder.conv1.weight"] =
-- tensor, ... }, whatever prefix the file used (ser.pretrained.encoder).
local Encoder = common.class(core)

-- The encoder's input for 16 kHz audio: Whisper's log-mel.
function Encoder:frontend(wav)
  return features.whisper_logmel(wav, { n_mels = self.config.n_mels })
end

-- module{ finetune_layers = N } -> the encoder as a ser.nn module for fine-tuning: the stem and
-- the bottom L - N blocks frozen (run by the C forward), the top N blocks and the final LayerNorm
-- trainable (ser.pretrained.whisper_module; docs/pretrained.md, "Fine-tuning").
function Encoder:module(opts)
  return require("ser.pretrained.whisper_module").module(self, opts)
end

-- Output frames for T input frames (a clip's valid rows), and front-end outputs of several clips
-- as the zero-padded batch [B, n_mels, Tmax] with their lengths (ser.data.embedding_cache).
function Encoder:output_frames(n) return (n + 1) // 2 end
function Encoder:batch(inputs) return common.batch(inputs, { self.config.n_mels }) end

-- load(path) -> encoder, or nil and a message (missing file, not a Whisper
-- checkpoint, config.json disagreeing with the tensors, ...).
function M.load(path)
  if type(path) ~= "string" then
    error(("pretrained.load: expected a folder or a .safetensors path (string), got %s"):format(type(path)), 2)
  end
  local w2v = require "ser.pretrained.wav2vec2"
  if w2v.detect(path) then return w2v.load(path) end
  local enc, err = core.load(path)
  if not enc then return nil, err end
  return setmetatable({ _enc = enc, config = core.config(enc) }, Encoder)
end

return M
