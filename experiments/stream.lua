-- Emotion over long or live audio, segment by segment:
--   serlua experiments/stream.lua results/crnn.safetensors long.wav
--   arecord -q -f S16_LE -r 16000 -c 1 | serlua experiments/stream.lua crnn.safetensors - --rate 16000
-- Slides a window (3 s, hop 0.5 s) over the audio, skips silence with a voice-activity gate,
-- smooths the probabilities over windows and prints one line per emotion segment,
-- "start end label confidence" (seconds), as soon as the segment is closed. docs/stream.md.
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("stream.lua", "Emotion segments of a long audio file or of raw PCM on stdin, window by window.")
parser:argument("checkpoint", "A .safetensors checkpoint written by compare.lua / ser.train.fit (or a notebook .pt).")
parser:argument("input", "An audio file (wav, flac, ogg, mp3, aiff), or - for raw PCM on stdin.")
parser:option("--rate", "Sample rate of the raw PCM on stdin in Hz (default: the model's rate).")
parser:option("--format", "Sample format of the raw PCM on stdin: s16 (16-bit signed) or f32 (32-bit float), " ..
              "little-endian."):default("s16")
parser:option("--channels", "Interleaved channels of the raw PCM on stdin (averaged into one)."):default("1")
parser:option("--window", "Window length in seconds (default 3, or the model's clip length when shorter).")
parser:option("--hop", "Seconds between window starts."):default("0.5")
parser:option("--smooth", "Windows the probabilities are averaged over."):default("3")
parser:flag("--no-vad", "Score every window, silence included (no voice-activity gate).")
parser:option("--vad-db", "A 10 ms frame is speech when louder than this (dBFS) ..."):default("-70")
parser:option("--vad-range", "... and within this many dB of the loudest recent frame."):default("30")
parser:option("--vad-min", "Seconds of speech a window needs to be scored."):default("0.25")
parser:option("--min-silence", "Seconds of silence that end a segment."):default("1.0")
parser:option("--min-segment", "Seconds a new label must hold to start a segment within speech."):default("1.0")
parser:option("--csv", "Write each window's probabilities (smoothed and its own) to this CSV file.")
parser:flag("--json", "Print JSON lines for programs ({\"type\": \"window\"|\"segment\", ...}) instead of segment lines.")
parser:option("--speaker-clips", "For speaker-normalised models: clips of the stream's speaker (an audio file or a " ..
              "folder of them; repeatable). Each window is normalised with their statistics and its own."):count("*")
parser:option("--classes", "Class names in the model's output order, comma-separated, for a checkpoint without a " ..
              "class list (a PyTorch .pt).")
local args = ser.cli.parse(parser)

local function number(name, text, integer)
  local v = tonumber(text)
  if not v or (integer and v ~= math.floor(v)) then
    parser:error(("--%s must be a %s, got '%s'"):format(name, integer and "whole number" or "number", tostring(text)))
  end
  return v
end

if not ser.stream.input.FORMATS[args.format] then
  parser:error(("--format must be s16 or f32, got '%s'"):format(args.format))
end
local channels = number("channels", args.channels, true)
if channels < 1 or channels > 64 then parser:error(("--channels must be 1..64, got %d"):format(channels)) end
if args.input ~= "-" and (args.rate or args.channels ~= "1" or args.format ~= "s16") then
  parser:error("--rate, --format and --channels describe raw PCM on stdin (input -); an audio file says its own")
end

local model, meta = ser.cli.load_checkpoint(parser, args.checkpoint, args.classes)
local speaker = ser.cli.speaker_clips(parser, args.speaker_clips)

-- the input: blocks of raw PCM (0.1 s each, so that a live source is answered promptly) or of a file
local blocks, rate
if args.input == "-" then
  rate = args.rate and number("rate", args.rate, true) or nil
  local block_frames = math.floor((rate or 16000) / 10)
  blocks = ser.stream.input.pcm(io.stdin, { format = args.format, channels = channels,
    block = block_frames * ser.stream.input.FORMATS[args.format] * channels })
else
  local ok, b, sr = pcall(ser.stream.input.file, args.input, { seconds = 10 })
  if not ok then io.stderr:write(tostring(b), "\n"); os.exit(1) end
  blocks, rate = b, sr
end

local ok, st = pcall(ser.stream.new, model, meta, { window = args.window and number("window", args.window),
  hop = number("hop", args.hop), rate = rate, vad = not args.no_vad, vad_db = number("vad-db", args.vad_db),
  vad_range = number("vad-range", args.vad_range),
  vad_min = number("vad-min", args.vad_min), smooth = number("smooth", args.smooth, true),
  min_silence = number("min-silence", args.min_silence), min_segment = number("min-segment", args.min_segment),
  speaker = speaker })
if not ok then parser:error((tostring(st):gsub("^ser%.stream%.new: ", ""))) end

local fmt = ser.stream.format
local csv, csv_tmp
if args.csv then
  -- written beside its final name and renamed at the end: a reader never sees half a file
  csv_tmp = args.csv .. ".tmp"
  local err
  csv, err = io.open(csv_tmp, "w")
  if not csv then io.stderr:write(("--csv: cannot write %s: %s\n"):format(csv_tmp, err)); os.exit(1) end
  csv:write(fmt.csv_header(meta.classes), "\n")
end

local progress = ser.fs.isatty(2)
local n_segments = 0
local function emit(windows, segments)
  for _, w in ipairs(windows) do
    if csv then csv:write(fmt.csv_row(w, meta.classes), "\n") end
    if args.json then
      print(fmt.json { type = "window", start = w.start, stop = w.stop, voiced = w.voiced, label = w.label,
        confidence = w.confidence, probs = fmt.by_class(w.probs, meta.classes),
        raw = fmt.by_class(w.raw, meta.classes) })
    end
  end
  for _, s in ipairs(segments) do
    n_segments = n_segments + 1
    if args.json then
      print(fmt.json { type = "segment", start = s.start, stop = s.stop, label = s.label, confidence = s.confidence,
        probs = fmt.by_class(s.probs, meta.classes) })
    else
      print(fmt.segment_line(s))
    end
  end
  if #windows > 0 or #segments > 0 then io.stdout:flush() end
  if progress and #windows > 0 then
    io.stderr:write(("\r%.1f s of audio, %d windows scored, %d skipped, %d segments "):format(st:seconds(), st.scored,
      st.skipped, n_segments))
  end
end

-- Input errors (a stream cut inside a frame, an unreadable block) end the run after what came
-- before them is reported.
local input_error
while true do
  local got, x = pcall(blocks)
  if not got then input_error = x; break end
  if not x then break end
  emit(st:push(x))
end
emit(st:finish())
if progress then io.stderr:write("\n") end
if csv then
  csv:close()
  local renamed, err = os.rename(csv_tmp, args.csv)
  if not renamed then io.stderr:write(("--csv: cannot rename %s to %s: %s\n"):format(csv_tmp, args.csv, err)); os.exit(1) end
end
if input_error then
  io.stderr:write(tostring(input_error), "\n")
  os.exit(1)
end
