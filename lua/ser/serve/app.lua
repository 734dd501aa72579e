-- The routes of serve.lua's web server, without the network: app:handle(req) takes a
-- request table (method, path, content_type, args, body: what ser.core.http hands out)
-- and returns status, content type, body and extra headers. Every answer but the page's
-- files is JSON; errors are {"error": "..."} with the status that fits.
--
--   GET  /                   the page (web/index.html; its files by name: /app.js, ...)
--   GET  /api/info           the checkpoint's classes, rate, window and hop
--   POST /predict            an audio file as the body -> label, probabilities, timeline
--   POST /stream?rate=R&format=f32|s16   open a live session -> {"id": ...} (R: any rate; resampled)
--   POST /stream/ID          raw PCM samples -> the windows and segments they complete
--   DELETE /stream/ID        close it -> the last window and the open segment
local audio = require "ser.core.audio"
local http = require "ser.core.http"
local cstream = require "ser.core.stream"
local stream = require "ser.stream"
local scorer = require "ser.stream.scorer"
local json = require "ser.serve.json"

local M = {}
local App = {}
App.__index = App

-- Content types /predict takes: what browsers and curl send for wav, flac and ogg files
-- (libsndfile reads the format from the bytes, so the type only has to say "audio").
M.AUDIO_TYPES = {
  ["audio/wav"] = true, ["audio/x-wav"] = true, ["audio/wave"] = true, ["audio/vnd.wave"] = true,
  ["audio/flac"] = true, ["audio/x-flac"] = true, ["audio/ogg"] = true, ["application/ogg"] = true,
  ["audio/mpeg"] = true, ["audio/aiff"] = true, ["audio/x-aiff"] = true, ["application/octet-stream"] = true,
}
M.PCM_TYPES = { ["application/octet-stream"] = true, ["audio/pcm"] = true }

local function fail(status, fmt, ...)
  return { status = status, msg = fmt:format(...) }
end

-- o: window, hop (seconds; default ser.stream's: 3 s or the model's clip length if shorter,
-- and 0.5), vad, smooth, max_sessions (live sessions open at once), session_idle (seconds
-- before an idle one is closed), name (shown on the page), speaker (a speaker-normalised model's
-- clips of the speaker, as ser.stream takes them). Raises ser.stream's message for a model it
-- cannot stream (a speaker-normalised one without the speaker's clips) or bad window options.
function M.new(model, meta, o)
  o = o or {}
  -- one scorer for the page's files and every live session: the speaker's clips are read once
  local shared = scorer.prepare(model, meta, o.speaker)
  local self = setmetatable({
    model = model, meta = meta, classes = meta.classes, score = shared.score, sr = shared.sr, seconds = shared.seconds,
    opts = { window = o.window, hop = o.hop, vad = o.vad, smooth = o.smooth, scorer = shared },
    max_sessions = o.max_sessions or 8, session_idle = o.session_idle or 60,
    name = o.name or "model", sessions = {}, n_sessions = 0, clock = o.clock or os.time,
  }, App)
  local st = self:stream()   -- checks the options now rather than at the first request
  self.window, self.hop, self.smooth = st.window / st.sr, st.hop / st.sr, st.opts.smooth
  return self
end

-- A ser.stream over input at `rate` (default: the model's).
function App:stream(rate)
  local o = { rate = rate }
  for k, v in pairs(self.opts) do o[k] = v end
  return stream.new(self.model, self.meta, o)
end

function App:probs_object(p)
  local values = {}
  for k, name in ipairs(self.classes) do values[name] = p[k] end
  return json.object(self.classes, values)
end

local function round3(x) return math.floor(x * 1000 + 0.5) / 1000 end

function App:window_json(w)
  -- probabilities: smoothed over the last windows (what label and confidence come from);
  -- raw: this window's own
  return { start = round3(w.start), stop = round3(w.stop), voiced = w.voiced, label = w.label,
           confidence = w.confidence, probabilities = w.probs and self:probs_object(w.probs) or nil,
           raw = w.raw and self:probs_object(w.raw) or nil }
end

function App:segments_json(segs)
  local out = {}
  for i, s in ipairs(segs) do
    out[i] = { start = round3(s.start), stop = round3(s.stop), label = s.label, confidence = s.confidence }
  end
  return json.array(out)
end

local function argmax(p)
  local best = 1
  for k = 2, #p do if p[k] > p[best] then best = k end end
  return best
end

-- The body goes through a temporary file so it is decoded by the same path as every
-- other audio file (ser.audio.load: libsndfile, soxr).
local function with_temp_file(body, fn)
  local path = os.tmpname()
  local f, err = io.open(path, "wb")
  if not f then return nil, "cannot write a temporary file: " .. tostring(err) end
  f:write(body)
  f:close()
  local ok, a, b = pcall(fn, path)
  os.remove(path)
  if not ok then error(a, 0) end
  return a, b
end

function App:predict(req)
  local ctype = (req.content_type or ""):match("^%s*([^;%s]+)") or ""
  if not M.AUDIO_TYPES[ctype:lower()] then
    return fail(415, "content type '%s' is not audio (send the file with Content-Type audio/wav, audio/flac or " ..
      "audio/ogg)", ctype)
  end
  if #req.body == 0 then return fail(400, "the request has no body (expected an audio file)") end
  return with_temp_file(req.body, function(path)
    local info, err = audio.info(path)
    if not info then return fail(400, "the body is not audio this server can decode: %s", (tostring(err):gsub("^[^:]*: ", ""))) end
    local wav, lerr = audio.load(path, { sr = self.sr, mono = true, cache = false })
    if not wav then return fail(400, "the body is not audio this server can decode: %s", tostring(lerr)) end
    local n = wav:shape()[1]
    local duration = n / self.sr
    -- the timeline: ser.stream's windows and segments over the whole file
    local st = self:stream()
    local wins, segs = st:push(wav)
    local w2, s2 = st:finish()
    for _, w in ipairs(w2) do wins[#wins + 1] = w end
    for _, sg in ipairs(s2) do segs[#segs + 1] = sg end
    -- the label: for a recording no longer than the model's clip, the clip's own
    -- probabilities (predict.lua's answer); for a longer one, the mean of its voiced
    -- windows' own probabilities (its first clip's when no window is voiced)
    local probs
    if duration <= self.seconds + 1e-6 then
      probs = self.score(wav)
    else
      local sum, count = {}, 0
      for _, w in ipairs(wins) do
        if w.raw then
          for k = 1, #w.raw do sum[k] = (sum[k] or 0) + w.raw[k] end
          count = count + 1
        end
      end
      if count == 0 then
        probs = self.score(wav:narrow(1, 1, math.floor(self.seconds * self.sr + 0.5)))
      else
        probs = {}
        for k = 1, #self.classes do probs[k] = sum[k] / count end
      end
    end
    local k = argmax(probs)
    local timeline = {}
    for i, w in ipairs(wins) do timeline[i] = self:window_json(w) end
    return { status = 200, json = { label = self.classes[k], confidence = probs[k],
      probabilities = self:probs_object(probs), duration = round3(duration), sample_rate = info.sr,
      windows = json.array(timeline), segments = self:segments_json(segs) } }
  end)
end

function App:expire()
  local now = self.clock()
  for id, s in pairs(self.sessions) do
    if now - s.used > self.session_idle then self.sessions[id], self.n_sessions = nil, self.n_sessions - 1 end
  end
end

local function new_id()
  local t = {}
  for i = 1, 16 do t[i] = ("%x"):format(math.random(0, 15)) end
  return table.concat(t)
end

function App:stream_open(req)
  self:expire()
  if self.n_sessions >= self.max_sessions then
    return fail(503, "%d live sessions are open, the most this server keeps; close one (DELETE /stream/ID) or " ..
      "wait %d s for an idle one to expire", self.n_sessions, self.session_idle)
  end
  local rate = tonumber(req.args.rate or self.sr)
  if not rate or rate < 1000 or rate > 768000 then
    return fail(400, "rate %s is not a sample rate (expected Hz in 1000..768000; the model's is %d)",
      tostring(req.args.rate), self.sr)
  end
  local format = req.args.format or "f32"
  if format ~= "f32" and format ~= "s16" then
    return fail(400, "format '%s' is not a sample format (expected f32 or s16, little-endian)", format)
  end
  local id = new_id()
  self.sessions[id] = { st = self:stream(rate), format = format, used = self.clock() }
  self.n_sessions = self.n_sessions + 1
  return { status = 201, json = { id = id, rate = rate, format = format, window = self.window, hop = self.hop,
    classes = self.classes } }
end

function App:stream_session(req, id)
  local s = self.sessions[id]
  if not s then return fail(404, "no live session '%s' (expired after %d s idle, closed, or never opened)", id, self.session_idle) end
  s.used = self.clock()
  local wins, segs
  if req.method == "DELETE" then
    wins, segs = s.st:finish()
    self.sessions[id], self.n_sessions = nil, self.n_sessions - 1
  else
    local ctype = (req.content_type or ""):match("^%s*([^;%s]+)") or ""
    if not M.PCM_TYPES[ctype:lower()] then
      return fail(415, "content type '%s': send raw PCM samples as application/octet-stream", ctype)
    end
    local ok, x, used = pcall(cstream.pcm_decode, req.body, s.format, 1)
    if not ok then return fail(400, "%s", (tostring(x):gsub("^[%w_.]*: ", ""))) end
    -- a chunk is whole samples: the page never splits one, and a split one is a client's bug
    if used ~= #req.body then
      return fail(400, "%d bytes are not a whole number of %s samples (%d bytes each)", #req.body, s.format,
        s.format == "f32" and 4 or 2)
    end
    local pushed, w, sg = pcall(s.st.push, s.st, x)
    if not pushed then return fail(400, "%s", (tostring(w):gsub("^ser%.stream: ", ""))) end
    wins, segs = w, sg
  end
  local out = {}
  for i, w in ipairs(wins) do out[i] = self:window_json(w) end
  return { status = 200, json = { windows = json.array(out), segments = self:segments_json(segs) } }
end

function App:info()
  return { status = 200, json = { classes = self.classes, sample_rate = self.sr, clip_seconds = self.seconds,
    window = self.window, hop = self.hop, smooth = self.smooth, model = tostring(self.meta.model or "?"), checkpoint = self.name } }
end

-- path -> { methods = {GET = handler, ...} } or a pattern route for /stream/ID
function App:route(req)
  local path = req.path
  if path == "/predict" then return { POST = self.predict } end
  if path == "/stream" then return { POST = self.stream_open } end
  if path == "/api/info" then return { GET = self.info } end
  local id = path:match("^/stream/([%w]+)$")
  if id then
    local function h(app, r) return app:stream_session(r, id) end
    return { POST = h, DELETE = h }
  end
  local name = path == "/" and "index.html" or path:match("^/([%w_%-%.]+)$")
  if name and http.asset(name) then
    return { GET = function() local body, mime = http.asset(name); return { status = 200, body = body, type = mime } end }
  end
end

-- -> status, content type, body, headers (nil or a table)
function App:handle(req)
  local methods = self:route(req)
  local res
  if not methods then
    res = fail(404, "no such path: %s (the page is at /, the API at /predict and /stream)", req.path)
  elseif not methods[req.method] then
    local allowed = {}
    for m in pairs(methods) do allowed[#allowed + 1] = m end
    table.sort(allowed)
    local allow = table.concat(allowed, ", ")
    res = fail(405, "%s does not take %s (it takes %s)", req.path, req.method, allow)
    res.headers = { Allow = allow }
  else
    local ok, r = pcall(methods[req.method], self, req)
    res = ok and r or fail(500, "%s", tostring(r))
  end
  if res.msg then return res.status, "application/json", json.encode({ error = res.msg }), res.headers end
  if res.json then return res.status, "application/json", json.encode(res.json), res.headers end
  return res.status, res.type, res.body, res.headers
end

return M
