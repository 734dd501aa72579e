-- ser.stream.scorer: the probabilities of one window of audio, with the features predict.lua
-- computes for a clip holding exactly that audio (experiments/predict.lua: the checkpoint's
-- rate, clip length, silence trimming and feature settings; ser.train.checkpoint).
--
--   local score, sr, seconds = scorer.new(model, meta [, speaker])   -- the rate of the windows, the most the model sees
--   local probs = score(wav)                    -- wav [n] at sr -> { p1, ..., pK }
--   local shared = scorer.prepare(model, meta [, speaker])  -- the same as one value for ser.stream.new's `scorer`
--
-- Spectral and waveform models (CNN2D, CRNN, CNN1D): the window is cut or zero-padded at the
-- end to the checkpoint's clip length, as loading a file of that length does; with silence
-- trimming, the voiced part is centred instead (ser.data.trim_window). The whisper family: the
-- window is the clip the encoder sees (its own length, up to the model's seconds; padded into
-- a silent Whisper window first when the model has model.context), pooled and standardised as
-- for files. Speaker-normalised models need the speaker's clips (speaker: a list of audio
-- file paths): each window is then normalised with the statistics over those clips and the
-- window, as predict.lua normalises a file given among the speaker's files; without them
-- they are refused (a stream has no statistics of its speaker when it starts).
local audio = require "ser.core.audio"
local base = require "ser.core.base"
local checkpoint = require "ser.train.checkpoint"
local loader = require "ser.data.loader"
local speaker_norm = require "ser.data.speaker_norm"
local T = require "ser.tensor"

local M = {}

local function softmax_row(model, x)
  return base.no_grad(function() return model(x):softmax(2) end):totable()[1]
end

local function refuse_speaker_norm(how)
  error(("ser.stream: the model was trained with speaker normalisation (%s): its features need the statistics " ..
    "of many clips of one speaker, which a stream does not have when it starts; give the speaker's clips " ..
    "(--speaker-clips of stream.lua and serve.lua), stream a model trained with per-clip normalisation, or score " ..
    "whole files with predict.lua"):format(how), 0)
end

local function check_speaker(speaker, normalised)
  if speaker == nil then return nil end
  if not normalised then
    error("ser.stream: the model was trained without speaker normalisation: the speaker's clips are not used; " ..
      "stream without them", 0)
  end
  if type(speaker) ~= "table" or #speaker == 0 then
    error(("ser.stream: speaker must be a list of the speaker's audio files, got %s"):format(tostring(speaker)), 0)
  end
  for i, p in ipairs(speaker) do
    local ok, err = audio.info(type(p) == "string" and p or "")
    if not ok then error(("ser.stream: the speaker's clip %d (%s): %s"):format(i, tostring(p), tostring(err)), 0) end
  end
  return speaker
end

-- A whisper-family model: the window's pooled features, normalised with the speaker's
-- statistics over the speaker's clips (pooled once here) and the window.
local function whisper_scorer(model, speaker)
  local window = { { path = "(stream window)", row = 1, speaker = "(stream)" } }
  if not model.speaker_norm then
    return function(wav) return softmax_row(model, model:features(window, { audio = wav:view(1, -1) })) end
  end
  if not speaker then refuse_speaker_norm("speaker_norm = true") end
  if type(model.pooled_features) ~= "function" or model.frame_level or model.encoder then
    error("ser.stream: a speaker-normalised frame-level or fine-tuned whisper model cannot be streamed; its pooled " ..
      "heads (superb, stats, concat) can", 0)
  end
  local clips, speakers = {}, {}
  for i, p in ipairs(speaker) do clips[i], speakers[i] = { path = p }, "(stream)" end
  speakers[#speakers + 1] = "(stream)"
  local known = model:pooled_features(clips)
  return function(wav)
    local x = T.cat({ known, model:pooled_features(window, { audio = wav:view(1, -1) }) }, 1)
    return softmax_row(model, model:speaker_normalise(x, speakers):narrow(1, #speakers, 1))
  end
end

-- A speaker-normalised spectral model: features computed without the per-clip z-norm (as the
-- loader computes them for it), the speaker's clips' once (read as predict.lua reads a file:
-- load_seconds at sr, then the clip preparation clip_of), each window's normalised with the
-- statistics (mode "speaker" or "speaker_bins") over them and the window.
local function spectral_speaker_scorer(model, features, mode, speaker, clip_of, sr, load_seconds)
  local raw = {}
  for k, v in pairs(features) do raw[k] = v end
  raw.normalize = false
  local function raw_of(wav) return checkpoint.transform(raw, clip_of(wav):contiguous():view(1, -1)) end
  local rows, items = {}, {}
  for i, p in ipairs(speaker) do
    local wav, err = audio.load(p, { sr = sr, mono = true, seconds = load_seconds })
    if not wav then error(("ser.stream: the speaker's clip %d (%s): %s"):format(i, p, tostring(err)), 0) end
    rows[i], items[i] = raw_of(wav), { speaker = "(stream)" }
  end
  local last = #items + 1
  items[last] = { speaker = "(stream)" }
  local function features_of(picked)
    local out = {}
    for j, r in ipairs(picked) do out[j] = rows[r] end
    return T.cat(out, 1)
  end
  return function(wav)
    rows[last] = raw_of(wav)
    local mean, scale = speaker_norm.stats(features_of, items, mode)
    return softmax_row(model, speaker_norm.apply(rows[last], mean:narrow(1, last, 1), scale:narrow(1, last, 1)))
  end
end

function M.new(model, meta, speaker)
  if type(model) ~= "table" or type(meta) ~= "table" then
    error(("ser.stream: expected model, meta from ser.train.load_checkpoint, got %s, %s"):format(type(model),
      type(meta)), 0)
  end
  if type(meta.classes) ~= "table" or #meta.classes < 2 then
    error(("ser.stream: the checkpoint's metadata has no class list (classes = %s)"):format(tostring(meta.classes)), 0)
  end
  local inputs = checkpoint.inputs(model, meta)
  local by_speaker = inputs.normalize ~= nil and inputs.normalize ~= "clip"
  if type(model.features) == "function" then by_speaker = model.speaker_norm == true end
  speaker = check_speaker(speaker, by_speaker)
  local sr, seconds = inputs.sr, inputs.seconds

  if type(model.features) == "function" then   -- a head on a frozen encoder (the whisper family)
    return whisper_scorer(model, speaker), sr, seconds
  end

  if by_speaker and not speaker then refuse_speaker_norm(("normalize = \"%s\""):format(tostring(inputs.normalize))) end
  local features = checkpoint.features(model, meta)
  local samples = math.floor(seconds * sr + 0.5)
  local trim = inputs.trim and loader.trim_options(inputs.trim, 1) or nil
  -- predict.lua reads this much of a file before trimming
  local lookahead = trim and math.floor(loader.trim_lookahead(seconds) * sr + 0.5) or samples
  local function clip_of(wav)
    local n = wav:shape()[1]
    if n > lookahead then wav, n = wav:narrow(1, 1, lookahead), lookahead end
    if trim then return loader.trim_window(wav:contiguous(), samples, trim) end
    if n == samples then return wav end
    local clip = T.zeros(samples)
    local keep = math.min(n, samples)
    if keep > 0 then clip:narrow(1, 1, keep):copy_(wav:narrow(1, 1, keep)) end
    return clip
  end
  if not by_speaker then
    return function(wav)
      return softmax_row(model, checkpoint.transform(features, clip_of(wav):contiguous():view(1, -1)))
    end, sr, seconds
  end

  local load_seconds = trim and loader.trim_lookahead(seconds) or seconds
  return spectral_speaker_scorer(model, features, inputs.normalize, speaker, clip_of, sr, load_seconds), sr, seconds
end

-- M.new's scorer as one value, { score =, sr =, seconds =, model = }, for ser.stream.new's
-- `scorer` option: streams of one model and speaker share it, so that the speaker's clips are
-- read (a whisper model's: encoded) once rather than once per stream, as serve.lua's live
-- sessions do. A call keeps nothing between windows, so the streams may take turns with it.
function M.prepare(model, meta, speaker)
  local score, sr, seconds = M.new(model, meta, speaker)
  return { score = score, sr = sr, seconds = seconds, model = model }
end

return M
