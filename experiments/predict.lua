-- Emotion of audio files with a trained checkpoint:
--   serlua experiments/predict.lua results/crnn.safetensors a.wav b.flac ...
-- Prints, per file, the predicted emotion and the probability of every class.
-- A model trained with speaker normalisation (compare.lua --norm speaker) normalises each
-- speaker's clips with that speaker's statistics over the files given: the speaker is read
-- from the file name (RAVDESS, CREMA-D, ... names), else --speaker, else all files are one.
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("predict.lua", "Predict the emotion of audio files with a checkpoint from compare.lua.")
parser:argument("checkpoint", "A .safetensors checkpoint written by compare.lua / ser.train.fit, or a state_dict of " ..
                "the notebook's models from PyTorch (torch.save(model.state_dict(), 'best_crnn_mel.pt')).")
parser:argument("files", "Audio files (wav, flac, ogg, mp3, aiff)."):args("+")
parser:option("--speaker", "For speaker-normalised models: the speaker of files whose names do not say (default: " ..
              "all such files are one speaker).")
parser:option("--classes", "Class names in the model's output order, comma-separated, for a checkpoint without a " ..
              "class list (a PyTorch .pt; default for 8 outputs: RAVDESS's neutral,calm,happy,sad,angry,fearful," ..
              "disgust,surprised).")
parser:option("--digits", "Decimal places of the printed probabilities (the C API's parity test reads 7).", "3")
  :convert(function(v)
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 or n > 9 then return nil, "--digits must be a whole number from 1 to 9, got " .. v end
    return n
  end)
local args = parser:parse(arg)

local model, meta, features = ser.cli.load_checkpoint(parser, args.checkpoint, args.classes)
-- the window, rate, trimming and normalisation of the model's training inputs
local inputs = ser.train.checkpoint_inputs(model, meta)
local seconds, sr = inputs.seconds, inputs.sr
local trim = inputs.trim and ser.data.trim_options(inputs.trim) or nil

local by_speaker = inputs.normalize ~= nil and inputs.normalize ~= "clip"

local function report(path, x)
  local probs = ser.no_grad(function() return model(x):softmax(2) end):totable()[1]
  local best = ser.train.argmax_rows({ probs })[1]
  local parts = {}
  local fmt = "%s %." .. args.digits .. "f"
  for c, name in ipairs(meta.classes) do parts[#parts + 1] = fmt:format(name, probs[c]) end
  print(("%s\t%s\t%s"):format(path, meta.classes[best], table.concat(parts, "  ")))
end

-- A head on a frozen encoder (the whisper family): the files' encoder features, computed
-- together (a speaker-normalised model groups them by the speaker in their names).
if type(model.features) == "function" then
  local items, failed = {}, 0
  for _, path in ipairs(args.files) do
    local ok, err = ser.audio.info(path)
    if not ok then
      io.stderr:write(("%s: %s\n"):format(path, err)); failed = failed + 1
    else
      local info = ser.data.infer(path)
      items[#items + 1] = { path = path, speaker = info and info.speaker or args.speaker or "(unnamed)" }
    end
  end
  local per = {}
  for _, it in ipairs(items) do per[it.speaker] = (per[it.speaker] or 0) + 1 end
  for speaker, n in pairs(model.speaker_norm and per or {}) do
    if n < 10 then
      io.stderr:write(("note: speaker %s has %d clip%s here; a speaker-normalised model is surer with 10 or more of " ..
        "the speaker's clips\n"):format(tostring(speaker), n, n == 1 and "" or "s"))
    end
  end
  if #items > 0 then
    local ok, x = pcall(model.features, model, items)
    if not ok then io.stderr:write(tostring(x), "\n"); os.exit(1) end
    for i, it in ipairs(items) do report(it.path, x:narrow(1, i, 1)) end
  end
  os.exit(failed > 0 and 1 or 0)
end

-- Each file is decoded and predicted in turn; a speaker-normalised model needs all of a
-- speaker's clips first, so then the waveforms are kept until every file is decoded.
local failed, good, waves = 0, {}, {}
for _, path in ipairs(args.files) do
  local wav, err = ser.audio.load(path, { sr = sr, mono = true,
    seconds = trim and ser.data.trim_lookahead(seconds) or seconds })
  if wav and trim then wav = ser.data.trim_window(wav, math.floor(seconds * sr + 0.5), trim) end
  if not wav then
    io.stderr:write(("%s: %s\n"):format(path, err))
    failed = failed + 1
  elseif by_speaker then
    good[#good + 1], waves[#waves + 1] = path, wav
  else
    report(path, ser.train.transform(features, wav:view(1, -1)))
  end
end

-- Speaker-normalised features of the kept files: grouped by the speaker in their names.
local function speaker_normalised()
  local items, groups, rows = {}, {}, {}
  for i, w in ipairs(waves) do rows[i] = w:view(1, -1) end
  for i, path in ipairs(good) do
    local info = ser.data.infer(path)
    local speaker = info and info.speaker or args.speaker or "(unnamed)"
    items[i] = { path = path, row = i, speaker = speaker }
    groups[speaker] = (groups[speaker] or 0) + 1
  end
  for speaker, n in pairs(groups) do
    if n < 10 then
      io.stderr:write(("note: speaker %s has %d clip%s here; a speaker-normalised model is surer with 10 or more of " ..
        "the speaker's clips\n"):format(tostring(speaker), n, n == 1 and "" or "s"))
    end
  end
  local part = { items = items, audio = ser.tensor.cat(rows, 1), sr = sr, classes = meta.classes,
                 name = "predict" }
  return ser.data.loader(part, { batch = 16, seconds = seconds, sr = sr, normalize = inputs.normalize,
    features = features }):features()
end

if #good > 0 then
  local x = speaker_normalised()
  for i, path in ipairs(good) do report(path, x:narrow(1, i, 1)) end
end
if failed > 0 then os.exit(1) end
