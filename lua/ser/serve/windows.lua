-- Sliding-window emotion over a stream of samples, with the interface of ser.stream
-- (issue 21 item 4, written on another branch): serve.lua's timeline and live view are
-- built on that interface and this stands in for it until it lands, when serve.lua
-- switches to ser.stream and this file goes (docs/serve.md says which one is in use).
--
--   local st = windows.new(model, meta, { window = 3.0, hop = 0.5, rate = 16000, vad = true, smooth = 3 })
--   local wins, segs = st:push(samples)   -- samples: 1-D tensor at `rate`
--   local wins, segs = st:finish()        -- the rest (a last, zero-padded window) and the open segment
-- windows: { start, stop, probs, label, confidence, voiced } (seconds from the stream's start;
-- probs in class order, nil when not voiced); segments: { start, stop, label, confidence }.
local T = require "ser.tensor"
local base = require "ser.core.base"
local checkpoint = require "ser.train.checkpoint"
local options = require "ser.options"

local M = {}
local Stream = {}
Stream.__index = Stream

-- A window is voiced when its RMS is above this level (dB re full scale): room noise
-- and silence between utterances fall below it, speech at a normal distance does not.
M.VAD_DB = -45

local KNOWN = { window = true, hop = true, rate = true, vad = true, smooth = true, vad_db = true }

function M.new(model, meta, o)
  o = o or {}
  options.check(o, KNOWN, "stream.new", 2)
  local inputs = checkpoint.inputs(model, meta)
  local rate = o.rate or inputs.sr
  if rate ~= inputs.sr then
    error(("stream.new: rate %s differs from the model's %d Hz (send audio at the model's rate)"):format(
      tostring(rate), inputs.sr), 2)
  end
  local window, hop = o.window or inputs.seconds, o.hop or 0.5
  if not (type(window) == "number" and window > 0 and type(hop) == "number" and hop > 0 and hop <= window) then
    error(("stream.new: window %s and hop %s must be numbers with 0 < hop <= window (seconds)"):format(
      tostring(window), tostring(hop)), 2)
  end
  local smooth = o.smooth or 3
  if math.type(smooth) ~= "integer" or smooth < 1 then
    error(("stream.new: smooth must be a whole number of windows >= 1, got %s"):format(tostring(smooth)), 2)
  end
  return setmetatable({
    model = model, classes = meta.classes, features = checkpoint.features(model, meta),
    rate = rate, win = math.floor(window * rate + 0.5), hop = math.floor(hop * rate + 0.5),
    model_len = math.floor(inputs.seconds * inputs.sr + 0.5),
    vad = o.vad ~= false, gate = 10 ^ ((o.vad_db or M.VAD_DB) / 20), smooth = smooth,
    buf = T.zeros(0), t0 = 0, n_in = 0, emitted = 0, recent = {}, seg = nil,
  }, Stream)
end

-- Probabilities of one window: cropped or zero-padded to the model's own clip length.
function Stream:classify(w)
  local n = w:shape()[1]
  if n > self.model_len then w = w:narrow(1, 1, self.model_len)
  elseif n < self.model_len then w = T.cat({ w, T.zeros(self.model_len - n) }, 1) end
  local x = checkpoint.transform(self.features, w:contiguous():view(1, -1))
  return base.no_grad(function() return self.model(x):softmax(2) end):totable()[1]
end

local function argmax(p)
  local best = 1
  for k = 2, #p do if p[k] > p[best] then best = k end end
  return best
end

-- The mean of the last `smooth` voiced windows' probabilities.
function Stream:smoothed(probs)
  local r = self.recent
  r[#r + 1] = probs
  if #r > self.smooth then table.remove(r, 1) end
  local m = {}
  for k = 1, #probs do
    local s = 0
    for _, p in ipairs(r) do s = s + p[k] end
    m[k] = s / #r
  end
  return m
end

-- One window starting at sample `start` (its first `valid` samples are real audio).
function Stream:window(w, start, valid, wins, segs)
  local rms = w:narrow(1, 1, valid):pow(2):mean():item() ^ 0.5
  local voiced = not self.vad or rms > self.gate
  local win = { start = start / self.rate, stop = (start + valid) / self.rate, voiced = voiced }
  if voiced then
    win.probs = self:classify(w)
    local m = self:smoothed(win.probs)
    local k = argmax(m)
    win.label, win.confidence = self.classes[k], m[k]
  else
    self.recent = {}
  end
  wins[#wins + 1] = win
  -- a window speaks for the hop-long stretch at its centre; stretches of one label make a segment
  local centre = (start + self.win / 2) / self.rate
  local a, b = centre - self.hop / (2 * self.rate), centre + self.hop / (2 * self.rate)
  local seg = self.seg
  if seg and (seg.label ~= win.label or not voiced) then
    segs[#segs + 1] = { start = seg.start, stop = seg.stop, label = seg.label, confidence = seg.sum / seg.n }
    self.seg, seg = nil, nil
  end
  if voiced then
    if seg then seg.stop, seg.sum, seg.n = b, seg.sum + win.confidence, seg.n + 1
    else
      -- the stream's first window also speaks for the audio before its centre
      self.seg = { start = start == 0 and 0 or math.max(0, a), stop = b, label = win.label, sum = win.confidence, n = 1 }
    end
  end
end

function Stream:push(samples)
  local wins, segs = {}, {}
  if samples:dim() ~= 1 then
    error(("stream:push: samples must be a 1-D tensor, got shape {%s}"):format(table.concat(samples:shape(), ",")), 2)
  end
  self.buf = T.cat({ self.buf, samples }, 1)
  self.n_in = self.n_in + samples:shape()[1]
  while self.buf:shape()[1] >= self.win do
    self:window(self.buf:narrow(1, 1, self.win), self.t0, self.win, wins, segs)
    self.emitted = self.emitted + 1
    local left = self.buf:shape()[1] - self.hop
    self.buf = self.buf:narrow(1, self.hop + 1, left):contiguous()
    self.t0 = self.t0 + self.hop
  end
  return wins, segs
end

function Stream:finish()
  local wins, segs = {}, {}
  local n = self.buf:shape()[1]
  -- a stream shorter than one window still gets one; otherwise audio past the last
  -- window's end gets a last, zero-padded window
  local covered = self.emitted > 0 and (self.t0 - self.hop + self.win) or 0
  if n > 0 and (self.emitted == 0 or self.n_in > covered) then
    self:window(T.cat({ self.buf, T.zeros(self.win - n) }, 1), self.t0, n, wins, segs)
  end
  if self.seg then
    local seg = self.seg
    -- the open segment runs to the end of the audio: nothing after its last window said otherwise
    segs[#segs + 1] = { start = seg.start, stop = self.n_in / self.rate, label = seg.label, confidence = seg.sum / seg.n }
    self.seg = nil
  end
  self.buf = T.zeros(0)
  return wins, segs
end

return M
