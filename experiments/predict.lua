-- Emotion of audio files with a trained checkpoint:
--   serlua experiments/predict.lua results/crnn.safetensors a.wav b.flac ...
-- Prints, per file, the predicted emotion and the probability of every class.
local ser = require "ser"
local argparse = require "argparse"
local batches = require "ser.train.batches"

local parser = argparse("predict.lua", "Predict the emotion of audio files with a checkpoint from compare.lua.")
parser:argument("checkpoint", "A .safetensors checkpoint written by compare.lua / ser.train.fit.")
parser:argument("files", "Audio files (wav, flac, ogg, mp3, aiff)."):args("+")
local args = parser:parse(arg)

local model, meta = ser.models.load(args.checkpoint)
if not model then parser:error(meta) end
local seconds, sr = tonumber(meta.seconds) or 4.0, tonumber(meta.sr) or 16000
-- a model trained on silence-trimmed clips sees its input trimmed the same way
local trim = type(meta.trim) == "table" and ser.data.trim_options(meta.trim) or nil

local failed = 0
for _, path in ipairs(args.files) do
  local wav, err = ser.audio.load(path, { sr = sr, mono = true,
    seconds = trim and ser.data.trim_lookahead(seconds) or seconds })
  if wav and trim then wav = ser.data.trim_window(wav, math.floor(seconds * sr + 0.5), trim) end
  if not wav then
    io.stderr:write(("%s: %s\n"):format(path, err))
    failed = failed + 1
  else
    local x = batches.transform(model.input, wav:view(1, -1))
    local probs = ser.no_grad(function() return model(x):softmax(2) end):totable()[1]
    local best = ser.train.argmax_rows({ probs })[1]
    local parts = {}
    for c, name in ipairs(meta.classes) do parts[#parts + 1] = ("%s %.3f"):format(name, probs[c]) end
    print(("%s\t%s\t%s"):format(path, meta.classes[best], table.concat(parts, "  ")))
  end
end
if failed > 0 then os.exit(1) end
