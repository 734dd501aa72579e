-- Our side of bench/bench_whisper.sh: the Whisper encoder's forward (inference).
--
--   serlua bench/bench_whisper.lua --serve --models NAME=PATH,... [--batch 8 --frames 400 --threads 2]
--       Loads every model, then answers lines on stdin: "NAME PREC" (PREC fp32 or amp) runs
--       one forward of a batch [B, n_mels, T] and prints "ms=<wall ms> cpu=<CPU ms of all
--       threads>"; "quit" ends.
--       The driver (bench_whisper.sh) alternates these with the PyTorch side's, so both
--       see the same load. Prints "ready" once loaded.
--   serlua bench/bench_whisper.lua --encode-all DIR --model PATH [--batch 8 --threads 2 --prec fp32,amp]
--       Encodes every .wav/.flac/.ogg under DIR (resampled to 16 kHz when needed): log-mel, clips sorted by length into batches
--       (little padding), the encoder, each clip's output rows mean-pooled to a d_model
--       vector. Prints the time of each part, clips/s and total seconds per precision.
local argparse = require "argparse"
local ser = require "ser"
local T = ser.tensor
local clock = require("ser.core.nn_cnn").monotonic

local p = argparse("bench_whisper.lua", "Whisper encoder speed (our side)")
p:flag("--serve", "Answer timing requests on stdin")
p:option("--models", "NAME=PATH,... (serve mode)")
p:option("--encode-all", "Folder of 16 kHz .wav clips to encode")
p:option("--model", "Encoder folder (encode-all mode)")
p:option("--prec", "Precisions for encode-all, comma separated", "fp32,amp")
p:option("--batch", "Batch size", "8")
p:option("--frames", "Input frames T (10 ms each; serve mode)", "400")
p:option("--threads", "Threads", "2")
local a = p:parse()
local B, Tn = tonumber(a.batch), tonumber(a.frames)
ser.set_num_threads(tonumber(a.threads))

local function set_prec(prec)
  if prec == "amp" then
    if not require("ser.core.nn_cnn").bf16_supported() then return false end
    ser.set_amp(true)
  elseif prec == "fp32" then
    ser.set_amp(false)
  else
    error("unknown precision " .. tostring(prec))
  end
  return true
end

if a.serve then
  io.stdout:setvbuf("line")
  local encs, inputs = {}, {}
  for name, path in (a.models or ""):gmatch("([^=,]+)=([^,]+)") do
    local enc = assert(ser.pretrained.load(path))
    encs[name] = enc
    ser.manual_seed(7)
    -- log-mel values lie in about [-1.5, 1.5] after Whisper's (x + 4) / 4
    inputs[name] = T.randn(B, enc.config.n_mels, Tn) * 0.5
  end
  print("ready")
  for line in io.lines() do
    if line == "quit" then break end
    local name, prec = line:match("^(%S+)%s+(%S+)$")
    local enc = encs[name]
    if not enc then
      print("error=unknown model " .. tostring(name))
    elseif not set_prec(prec) then
      print("error=no AVX512-BF16")
    else
      collectgarbage() -- the previous output goes back to the allocator's cache, as torch frees by refcount
      local t0, c0 = clock(), os.clock()
      local y = enc(inputs[name])
      local ms, cpu = 1000 * (clock() - t0), 1000 * (os.clock() - c0)
      y = nil -- luacheck: ignore
      print(("ms=%.3f cpu=%.3f"):format(ms, cpu))
    end
  end
  return
end

if a.encode_all then
  assert(a.model, "--encode-all needs --model")
  local paths = assert(require("ser.core.data").walk(a.encode_all, 0))
  local wavs = {}
  for _, path in ipairs(paths) do
    local ext = path:match("%.(%w+)$")
    if ext and ({ wav = true, flac = true, ogg = true })[ext:lower()] then wavs[#wavs + 1] = path end
  end
  if #wavs == 0 then
    io.stderr:write(("bench_whisper.lua: no .wav/.flac/.ogg clips under %s\n"):format(a.encode_all))
    os.exit(1)
  end
  table.sort(wavs)
  local t0 = clock()
  local enc = assert(ser.pretrained.load(a.model))
  local t_load = clock() - t0
  -- audio and log-mel once (the same for both precisions)
  t0 = clock()
  local mels, frames = {}, {}
  for i, path in ipairs(wavs) do
    local wav = ser.audio.load(path, { sr = 16000, mono = true })
    mels[i] = enc:frontend(wav)
    frames[i] = mels[i]:shape()[2]
  end
  local t_front = clock() - t0
  local order = {}
  for i = 1, #wavs do order[i] = i end
  table.sort(order, function(x, y) return frames[x] < frames[y] or (frames[x] == frames[y] and x < y) end)
  local total_frames, padded_frames = 0, 0
  for i = 1, #wavs do total_frames = total_frames + frames[i] end
  print(("clips: %d in %s, %.1f s of audio; model %s (%d layers, d %d); batch %d, %d threads"):format(#wavs,
    a.encode_all, total_frames / 100, a.model, enc.config.layers, enc.config.d_model, B, ser.num_threads()))
  print(("load: encoder %.2f s; audio + log-mel %.2f s (%.0f clips/s)"):format(t_load, t_front, #wavs / t_front))
  for prec in a.prec:gmatch("[^,]+") do
    if not set_prec(prec) then
      print(prec .. ": skipped (this CPU has no AVX512-BF16)")
    else
      local pooled = {}
      padded_frames = 0
      collectgarbage()
      t0 = clock()
      local c0 = os.clock()
      for s = 1, #order, B do
        local n = math.min(B, #order - s + 1)
        local Tmax = frames[order[s + n - 1]]
        local x = T.zeros(n, enc.config.n_mels, Tmax)
        local lengths = {}
        for j = 1, n do
          local i = order[s + j - 1]
          lengths[j] = frames[i]
          x:select(1, j):narrow(2, 1, frames[i]):copy_(mels[i])
        end
        padded_frames = padded_frames + n * Tmax
        local y = enc(x, { lengths = lengths })
        for j = 1, n do
          pooled[order[s + j - 1]] = y:select(1, j):narrow(1, 1, (lengths[j] + 1) // 2):mean(1)
        end
      end
      local t_enc, c_enc = clock() - t0, os.clock() - c0
      assert(#pooled == #wavs)
      print(("%s: encoder %.2f s (CPU %.2f s, all threads), %.1f clips/s (%.1f s of audio per s); padding %.1f %% "
        .. "of frames; with the log-mel: %.2f s total, %.1f clips/s"):format(prec, t_enc, c_enc, #wavs / t_enc,
        total_frames / 100 / t_enc, 100 * (padded_frames - total_frames) / padded_frames, t_enc + t_front,
        #wavs / (t_enc + t_front)))
      print(("RESULT mode=encode_all prec=%s clips=%d encoder_s=%.3f encoder_cpu_s=%.3f total_s=%.3f"):format(prec,
        #wavs, t_enc, c_enc, t_enc + t_front))
    end
  end
  ser.set_amp(false)
  return
end

io.stderr:write("bench_whisper.lua: give --serve or --encode-all (see --help)\n")
os.exit(2)
