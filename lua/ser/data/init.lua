-- ser.data: corpora (scan, manifest, synthetic), speaker-independent splits and folds,
-- and the batch loader. See docs/data.md.
local corpus = require "ser.data.corpus"
local names = require "ser.data.names"

local M = {
  scan = require("ser.data.scan").scan,
  audio_files = require("ser.data.scan").audio_files,   -- a file, or the audio files under a folder
  manifest = require("ser.data.manifest").manifest,
  synthetic = require("ser.data.synthetic").synthetic,
  loader = require("ser.data.loader").loader,
  -- silence trimming as the loader's trim option does it, for one waveform (predict.lua)
  trim_options = function(t) return require("ser.data.loader").trim_options(t, 2) end,
  trim_window = require("ser.data.loader").trim_window,
  trim_lookahead = require("ser.data.loader").trim_lookahead,
  fetch_ravdess = require("ser.data.fetch").fetch_ravdess,
  corpus = corpus.new,          -- ser.data.corpus(items, {classes = ...}) for hand-made lists
  canonical = names.canonical,  -- canonical emotion names in their stable order
  infer = names.infer,          -- label/speaker of one path: ser.data.infer("x/03-01-05-01-01-01-12.wav")
  -- the reference pipeline's augmentation as loader options: augment = ..., spec_augment = ...
  reference_augment = require("ser.data.augment_steps").reference,
  reference_spec_augment = require("ser.data.augment_steps").reference_masks,
}

-- Warnings (empty split parts, missing classes, missing files) go to stderr; replace to capture.
function M.set_warn(fn)
  if type(fn) ~= "function" then error("set_warn: expected a function(message)", 2) end
  corpus.warn = fn
end

return M
