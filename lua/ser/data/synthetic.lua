-- ser.data.synthetic{...}: a deterministic corpus of speech-like audio rendered in C
-- (src/audio/synth.c), kept in memory and optionally written as RAVDESS-named WAV files.
local names = require "ser.data.names"
local corpus = require "ser.data.corpus"
local options = require "ser.options"
local fs_c = require "ser.core.fs"
local core = require "ser.core.data"

local M = {}

local ravdess_order = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }

local function check_int(name, v, lo, hi)
  if type(v) ~= "number" or v ~= math.floor(v) or v < lo or (hi and v > hi) then
    error(("synthetic: %s must be a whole number %s, got %s"):format(name,
      hi and ("in %d..%d"):format(lo, hi) or (">= %d"):format(lo), tostring(v)), 3)
  end
end

-- Emotion codes (1-based RAVDESS order) of the requested classes.
local function class_codes(classes)
  if classes == nil then classes = 8 end
  local codes = {}
  if type(classes) == "number" then
    check_int("classes", classes, 2, 8)
    for i = 1, classes do codes[i] = i end
    return codes
  end
  if type(classes) ~= "table" then
    error(("synthetic: classes must be a count (2..8) or a list of names, got %s"):format(type(classes)), 3)
  end
  local index = {}
  for i, c in ipairs(ravdess_order) do index[c] = i end
  for _, c in ipairs(classes) do
    local code = index[names.canonical_label(c) or c]
    if not code then
      error(("synthetic: class '%s' cannot be synthesised (expected some of %s)"):format(tostring(c),
        table.concat(ravdess_order, " ")), 3)
    end
    for _, seen in ipairs(codes) do
      if seen == code then error(("synthetic: class '%s' is listed twice"):format(tostring(c)), 3) end
    end
    codes[#codes + 1] = code
  end
  table.sort(codes)
  if #codes < 2 then error("synthetic: at least 2 classes are needed", 3) end
  return codes
end

local function mkdir_p(dir)
  local ok, err = fs_c.mkdir_p(dir)
  if not ok then error(("synthetic: cannot create folder '%s': %s"):format(dir, err), 3) end
end

-- Returns a corpus (items with RAVDESS fields, corpus.audio = [N, samples], corpus.synthetic).
function M.synthetic(opts)
  opts = opts or {}
  options.check(opts, { "speakers", "per_class", "classes", "seconds", "sr", "seed", "out", "format" }, "synthetic", 2)
  local speakers, per_class = opts.speakers or 24, opts.per_class or 2
  local seconds, sr, seed = opts.seconds or 4.0, opts.sr or 16000, opts.seed or 1
  check_int("speakers", speakers, 1, 99)
  check_int("per_class", per_class, 1, 396) -- 4 takes per repetition number, two digits
  check_int("sr", sr, 4000, 192000)
  check_int("seed", seed, 0)
  if type(seconds) ~= "number" or seconds < 0.25 or seconds > 60 then
    error(("synthetic: seconds must be a number in 0.25..60, got %s"):format(tostring(seconds)), 2)
  end
  local format = opts.format or "wav"
  if format ~= "wav" and format ~= "flac" then
    error(("synthetic: format must be \"wav\" or \"flac\", got %s"):format(tostring(format)), 2)
  end
  local codes = class_codes(opts.classes)
  local clips, items = {}, {}
  for spk = 1, speakers do
    for _, code in ipairs(codes) do
      for j = 0, per_class - 1 do
        -- take j -> (intensity, statement, repetition) one-to-one, like RAVDESS's design
        local intensity, statement, repetition = j % 2, (j // 2) % 2 + 1, j // 4 + 1
        local stem = ("03-01-%02d-%02d-%02d-%02d-%02d"):format(code, intensity + 1, statement, repetition, spk)
        local info = names.ravdess(stem)
        info.dataset, info.row = "synthetic", #items + 1
        info.path = ("synthetic:Actor_%02d/%s.%s"):format(spk, stem, format)
        info.stem = stem
        items[#items + 1] = info
        clips[#clips + 1] = { speaker = spk, emotion = code, intensity = intensity, statement = statement,
          repetition = repetition }
      end
    end
  end
  local samples = math.floor(seconds * sr + 0.5)
  local audio = core.synth(clips, samples, sr, seed)
  local root = "synthetic"
  if opts.out then
    -- files are written one by one atomically; a half-written corpus has only whole files
    local out = opts.out:gsub("/+$", "")
    local paths = {}
    for i, it in ipairs(items) do
      local dir = ("%s/Actor_%02d"):format(out, it.speaker)
      if i == 1 or it.speaker ~= items[i - 1].speaker then mkdir_p(dir) end
      it.path = ("%s/%s.%s"):format(dir, it.stem, format)
      paths[i] = it.path
    end
    core.save_rows(audio, paths, sr)
    root = out
  end
  local classes = {}
  for i, code in ipairs(codes) do classes[i] = ravdess_order[code] end
  return corpus.new(items, { classes = classes, root = root, name = "synthetic", audio = audio, sr = sr,
    synthetic = true, seconds = seconds })
end

return M
