-- ser.stream: emotion over long or live audio, window by window (docs/stream.md).
--
--   local model, meta = ser.train.load_checkpoint("crnn.safetensors")
--   local st = ser.stream.new(model, meta, { window = 3.0, hop = 0.5, rate = 16000, vad = true, smooth = 3 })
--   local windows, segments = st:push(samples)   -- a float tensor [N] or a Lua array, at `rate`
--   local windows, segments = st:finish()        -- end of input
--
-- windows: the windows scored by this call, in order: { start =, stop = (seconds), voiced =,
--   probs = smoothed probabilities, raw = the window's own, label =, confidence = } (an
--   unvoiced window has voiced = false and no probabilities: it was not scored).
-- segments: the emotion segments this call closed: { start =, stop =, label =, confidence =,
--   probs = mean probabilities }.
-- A speaker-normalised model needs { speaker = { "clip1.wav", ... } }: clips of the stream's
-- speaker, whose statistics (with each window's) normalise the windows (ser.stream.scorer);
-- or { scorer = ser.stream.scorer.prepare(model, meta, speaker) }, one scorer shared by the
-- streams of that speaker, which then read the clips once.
--
-- The per-sample work is in C (src/audio/stream.c: resampling to the model's rate, the ring of
-- the last window, frame energies); the windows are scored as predict.lua scores a clip of
-- that audio (ser.stream.scorer) and turned into segments by ser.stream.segments. Memory is
-- fixed when the stream is made, whatever the input's length.
local cstream = require "ser.core.stream"
local T = require "ser.tensor"
local options = require "ser.options"
local scorer = require "ser.stream.scorer"
local segments = require "ser.stream.segments"
local format = require "ser.stream.format"
local input = require "ser.stream.input"

local M = {}
M.format = format   -- text forms: segment lines, JSON lines, CSV rows
M.input = input   -- raw PCM and audio files a block at a time
M.scorer = scorer   -- one window's probabilities (what ser.stream.new scores with)

local Stream = {}
Stream.__index = Stream
Stream.__name = "ser.stream.Stream"

-- The voice-activity gate's frames: 10 ms; windows and hops are whole frames.
M.FRAME = 0.01
-- How fast the gate's reference peak falls, in dB a second (after a loud speaker, a quieter
-- one 1.5 s later is judged against a peak 15 dB lower).
M.VAD_DECAY = 10

M.defaults = { window = 3.0, hop = 0.5, vad = true, vad_db = -70, vad_range = 30, vad_min = 0.25, smooth = 3,
  min_silence = 1.0, min_segment = 1.0 }
local known = { "window", "hop", "rate", "vad", "vad_db", "vad_range", "vad_min", "smooth", "min_silence",
  "min_segment", "speaker", "scorer" }

local function check_number(o, key, lo, hi, what)
  local v = o[key]
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    error(("ser.stream.new: %s must be %s, got %s"):format(key, what, tostring(v)), 3)
  end
  return v
end

-- The scorer of o.scorer (ser.stream.scorer.prepare's), checked against the model; nothing
-- when there is none.
local function shared_scorer(model, o)
  local s = o.scorer
  if s == nil then return nil end
  if o.speaker ~= nil then
    error("ser.stream.new: give the speaker's clips (speaker) or a prepared scorer (scorer), not both: the " ..
      "scorer already holds its speaker", 3)
  end
  if type(s) ~= "table" or type(s.score) ~= "function" or type(s.sr) ~= "number" or type(s.seconds) ~= "number" then
    error(("ser.stream.new: scorer must be what ser.stream.scorer.prepare returns, got %s"):format(tostring(s)), 3)
  end
  if s.model ~= model then
    error("ser.stream.new: the scorer was prepared for another model; prepare it with this stream's model", 3)
  end
  return s.score, s.sr, s.seconds
end

function M.new(model, meta, o)
  options.check(o, known, "ser.stream.new", 2)
  local opts = {}
  for k, v in pairs(M.defaults) do opts[k] = v end
  for k, v in pairs(o or {}) do opts[k] = v end
  local score, sr, seconds = shared_scorer(model, opts)
  if not score then score, sr, seconds = scorer.new(model, meta, opts.speaker) end
  opts.rate = opts.rate or sr
  -- a model sees at most its clip length: a longer window's tail would be cut off unseen
  if o == nil or o.window == nil then opts.window = math.min(opts.window, seconds) end
  check_number(opts, "window", M.FRAME, seconds,
    ("a number of seconds in 0.01..%g (the model's clip length: it sees no more)"):format(seconds))
  check_number(opts, "hop", M.FRAME, opts.window, ("a number of seconds in 0.01..window (%g)"):format(opts.window))
  check_number(opts, "rate", 1000, 768000, "a sample rate in Hz, 1000..768000")
  if type(opts.vad) ~= "boolean" then
    error(("ser.stream.new: vad must be true or false, got %s"):format(tostring(opts.vad)), 2)
  end
  check_number(opts, "vad_db", -120, 0, "a level in dBFS, -120..0")
  check_number(opts, "vad_range", 1, 120, "a number of dB in 1..120")
  check_number(opts, "vad_min", 0, opts.window, ("seconds of speech in 0..window (%g)"):format(opts.window))
  check_number(opts, "smooth", 1, 1000, "a whole number of windows >= 1")
  if opts.smooth ~= math.floor(opts.smooth) then
    error(("ser.stream.new: smooth must be a whole number of windows >= 1, got %s"):format(opts.smooth), 2)
  end
  check_number(opts, "min_silence", M.FRAME, 3600, "seconds in 0.01..3600")
  check_number(opts, "min_segment", 0, 3600, "seconds in 0..3600")

  local frame = math.floor(M.FRAME * sr + 0.5)            -- samples per frame at the model's rate
  local wframes = math.floor(opts.window / M.FRAME + 0.5)
  local hframes = math.max(1, math.floor(opts.hop / M.FRAME + 0.5))
  local self = setmetatable({ model = model, meta = meta, classes = meta.classes, score = score, sr = sr,
    rate = opts.rate, opts = opts, frame = frame, window = wframes * frame, hop = hframes * frame,
    vad_frames = math.floor(opts.vad_min / M.FRAME + 0.5), scored = 0, skipped = 0,
    flags = {}, frontier = 0, kept = 0, peak = -math.huge, decay = M.VAD_DECAY * M.FRAME }, Stream)
  self.core = cstream.new { in_rate = opts.rate, rate = sr, window = self.window, hop = self.hop }
  self.seg = segments.new { classes = meta.classes, frame = frame / sr, hop = self.hop / sr, smooth = opts.smooth,
    min_silence = opts.min_silence, min_segment = opts.min_segment, min_speech = opts.vad and opts.vad_min or 0 }
  return self
end

-- The voice-activity flags of frames first, first + 1, ... from their levels db[1..]: a frame
-- is speech when louder than vad_db and than vad_range below the loudest recent frame (a peak
-- that decays VAD_DECAY dB a second), so that a loud voice's quiet breaths and room noise do
-- not count, as ser.audio.trim's top_db judges a clip against its loudest frame.
function Stream:judge(first, db)
  local o, flags = self.opts, {}
  for i, v in ipairs(db) do
    local on = true
    if o.vad then
      self.peak = math.max(v, self.peak - self.decay)
      on = v > o.vad_db and v > self.peak - o.vad_range
    end
    flags[i] = on
    self.flags[first + i - 1] = on
  end
  self.seg:frames(first, flags)
end

-- One window from the ring: the voice activity of its frames not judged yet, then (when it
-- holds enough speech) its probabilities.
function Stream:take(wav, start, windows, closed)
  local n, frame = wav:shape()[1], self.frame
  local f0, nf = start // frame, (n + frame - 1) // frame
  local new = math.max(self.frontier, f0)
  if new < f0 + nf then
    local off = (new - f0) * frame
    self:judge(new, cstream.frame_db(wav:narrow(1, off + 1, n - off), frame):totable())
    self.frontier = f0 + nf
  end
  local voiced = 0
  for f = f0, f0 + nf - 1 do if self.flags[f] then voiced = voiced + 1 end end
  -- the next window starts a hop later: the flags before it are done with
  for f = self.kept, f0 + self.hop // frame - 1 do self.flags[f] = nil end
  self.kept = math.max(self.kept, f0 + self.hop // frame)
  local w = { start = start / self.sr, stop = (start + n) / self.sr,
              voiced = not self.opts.vad or (voiced > 0 and voiced >= self.vad_frames) }
  local raw
  if w.voiced then
    raw = self.score(wav)
    self.scored = self.scored + 1
  else
    self.skipped = self.skipped + 1
  end
  local p, done = self.seg:window((start + n / 2) / self.sr, raw, voiced)
  if p then
    local best, conf = segments.argmax(p)
    w.probs, w.raw, w.label, w.confidence = p, raw, self.classes[best], conf
  end
  windows[#windows + 1] = w
  for _, s in ipairs(done) do closed[#closed + 1] = s end
end

function Stream:drain(windows, closed)
  while true do
    local wav, start = self.core:next_window()
    if not wav then return end
    self:take(wav, start, windows, closed)
  end
end

-- samples: a float tensor [N] or a Lua array of numbers, at the stream's rate.
function Stream:push(samples)
  if self.finished then error("ser.stream: push after finish (the stream has ended)", 2) end
  local x = samples
  if type(samples) == "table" and not T.is_tensor(samples) then
    local ok, t = true, nil
    if #samples == 0 then t = T.zeros(0) else ok, t = pcall(T.new, samples) end
    if not ok then error("ser.stream: push expects a float tensor [N] or an array of numbers: " .. tostring(t), 2) end
    x = t
  elseif not T.is_tensor(samples) then
    error(("ser.stream: push expects a float tensor [N] or an array of numbers, got %s"):format(type(samples)), 2)
  end
  if #x:shape() ~= 1 then
    error(("ser.stream: push expects one channel of samples, a tensor [N]; got shape [%s]")
      :format(table.concat(x:shape(), ",")), 2)
  end
  local windows, closed = {}, {}
  local n, first = x:shape()[1], 1
  while first <= n do
    local taken = self.core:push(x, first)
    first = first + taken
    local before = #windows
    self:drain(windows, closed)
    if taken == 0 and #windows == before then   -- cannot happen by the ring's sizing; never spin
      error("ser.stream: the stream made no progress (ring full without a window)", 2)
    end
  end
  return windows, closed
end

-- End of input: the resampler's tail, the final window over what no full window reached, and
-- the segments still open.
function Stream:finish()
  local windows, closed = {}, {}
  if self.finished then return windows, closed end
  self.finished = true
  while self.core:finish() do self:drain(windows, closed) end
  self:drain(windows, closed)
  for _, s in ipairs(self.seg:finish()) do closed[#closed + 1] = s end
  return windows, closed
end

-- Seconds of input (at the model's rate) received so far.
function Stream:seconds() return self.core:samples() / self.sr end

return M
