-- ser.stream.scorer: the probabilities of one window of audio, with the features predict.lua
-- computes for a clip holding exactly that audio (experiments/predict.lua: the checkpoint's
-- rate, clip length, silence trimming and feature settings; ser.train.checkpoint).
--
--   local score, sr, seconds = scorer.new(model, meta)   -- the rate of the windows, the most the model sees
--   local probs = score(wav)                    -- wav [n] at sr -> { p1, ..., pK }
--
-- Spectral and waveform models (CNN2D, CRNN, CNN1D): the window is cut or zero-padded at the
-- end to the checkpoint's clip length, as loading a file of that length does; with silence
-- trimming, the voiced part is centred instead (ser.data.trim_window). The whisper family: the
-- window is the clip the encoder sees (its own length, up to the model's seconds; padded into
-- a silent Whisper window first when the model has model.context), pooled and standardised as
-- for files. Speaker-normalised models are refused: their features need a
-- speaker's statistics over many clips, which a stream does not have when it starts.
local base = require "ser.core.base"
local checkpoint = require "ser.train.checkpoint"
local loader = require "ser.data.loader"
local T = require "ser.tensor"

local M = {}

local function softmax_row(model, x)
  return base.no_grad(function() return model(x):softmax(2) end):totable()[1]
end

local function refuse_speaker_norm(how)
  error(("ser.stream: the model was trained with speaker normalisation (%s): its features need the statistics " ..
    "of many clips of one speaker, which a stream does not have when it starts; stream a model trained with " ..
    "per-clip normalisation (compare.lua --norm clip), or score whole files with predict.lua"):format(how), 0)
end

function M.new(model, meta)
  if type(model) ~= "table" or type(meta) ~= "table" then
    error(("ser.stream: expected model, meta from ser.train.load_checkpoint, got %s, %s"):format(type(model),
      type(meta)), 0)
  end
  if type(meta.classes) ~= "table" or #meta.classes < 2 then
    error(("ser.stream: the checkpoint's metadata has no class list (classes = %s)"):format(tostring(meta.classes)), 0)
  end
  local inputs = checkpoint.inputs(model, meta)
  local sr, seconds = inputs.sr, inputs.seconds

  if type(model.features) == "function" then   -- a head on a frozen encoder (the whisper family)
    if model.speaker_norm then refuse_speaker_norm("speaker_norm = true") end
    local items = { { path = "(stream window)", row = 1, speaker = "(stream)" } }
    return function(wav)
      return softmax_row(model, model:features(items, { audio = wav:view(1, -1) }))
    end, sr, seconds
  end

  if inputs.normalize ~= nil and inputs.normalize ~= "clip" then
    refuse_speaker_norm(("normalize = \"%s\""):format(tostring(inputs.normalize)))
  end
  local features = checkpoint.features(model, meta)
  local samples = math.floor(seconds * sr + 0.5)
  local trim = inputs.trim and loader.trim_options(inputs.trim, 1) or nil
  -- predict.lua reads this much of a file before trimming
  local lookahead = trim and math.floor(loader.trim_lookahead(seconds) * sr + 0.5) or samples
  return function(wav)
    local n = wav:shape()[1]
    if n > lookahead then wav, n = wav:narrow(1, 1, lookahead), lookahead end
    local clip
    if trim then
      clip = loader.trim_window(wav:contiguous(), samples, trim)
    elseif n == samples then
      clip = wav
    else
      clip = T.zeros(samples)
      local keep = math.min(n, samples)
      if keep > 0 then clip:narrow(1, 1, keep):copy_(wav:narrow(1, 1, keep)) end
    end
    return softmax_row(model, checkpoint.transform(features, clip:contiguous():view(1, -1)))
  end, sr, seconds
end

return M
