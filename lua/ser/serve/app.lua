-- The routes of serve.lua's web server, without the network: app:handle(req) takes a
-- request table (method, path, content_type, args, body: what ser.core.http hands out)
-- and returns status, content type, body and extra headers. Every answer but the page's
-- files is JSON; errors are {"error": "..."} with the status that fits.
--
--   GET  /                   the page (web/index.html; its files by name: /app.js, ...)
--   GET  /api/info           the checkpoint's classes, rate, window and hop
--   POST /predict            an audio file as the body -> label, probabilities, timeline
--   POST /stream?rate=R&format=f32|s16   open a live session -> {"id": ...}
--   POST /stream/ID          raw PCM samples -> the windows and segments they complete
--   DELETE /stream/ID        close it -> the last window and the open segment
local audio = require "ser.core.audio"
local http = require "ser.core.http"
local checkpoint = require "ser.train.checkpoint"
local loader = require "ser.data.loader"
local base = require "ser.core.base"
local json = require "ser.serve.json"
local windows = require "ser.serve.windows"

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

-- Models whose inputs serve.lua can prepare from one recording alone.
function M.check_model(model, meta, path)
  if type(model.features) == "function" then
    return nil, ("%s: a head on a frozen encoder (%s); serve.lua runs models on waveform or spectrogram " ..
      "inputs (cnn2d, crnn, cnn1d and their recipes)"):format(path, tostring(meta.model))
  end
  local inputs = checkpoint.inputs(model, meta)
  if inputs.normalize ~= nil and inputs.normalize ~= "clip" then
    return nil, ("%s: a speaker-normalised model (normalize = %s) needs many clips of each speaker; one " ..
      "recording on a web page has no such statistics"):format(path, tostring(inputs.normalize))
  end
  return true
end

-- o: window, hop (seconds; default the model's clip length and 0.5), vad, smooth,
-- max_sessions (live sessions open at once), session_idle (seconds before one is closed).
function M.new(model, meta, o)
  o = o or {}
  local inputs = checkpoint.inputs(model, meta)
  local self = setmetatable({
    model = model, meta = meta, classes = meta.classes, features = checkpoint.features(model, meta),
    sr = inputs.sr, seconds = inputs.seconds,
    trim = inputs.trim and loader.trim_options(inputs.trim) or nil,
    window = o.window or inputs.seconds, hop = o.hop or 0.5, vad = o.vad ~= false, smooth = o.smooth or 3,
    max_sessions = o.max_sessions or 8, session_idle = o.session_idle or 60,
    name = o.name or "model", sessions = {}, n_sessions = 0, clock = o.clock or os.time,
  }, App)
  self:stream() -- checks the window options now rather than at the first request
  return self
end

function App:stream()
  return windows.new(self.model, self.meta, { window = self.window, hop = self.hop, rate = self.sr, vad = self.vad,
    smooth = self.smooth })
end

function App:probs_object(p)
  local values = {}
  for k, name in ipairs(self.classes) do values[name] = p[k] end
  return json.object(self.classes, values)
end

local function round3(x) return math.floor(x * 1000 + 0.5) / 1000 end

function App:window_json(w)
  return { start = round3(w.start), stop = round3(w.stop), voiced = w.voiced, label = w.label,
           confidence = w.confidence, probabilities = w.probs and self:probs_object(w.probs) or nil }
end

function App:segments_json(segs)
  local out = {}
  for i, s in ipairs(segs) do
    out[i] = { start = round3(s.start), stop = round3(s.stop), label = s.label, confidence = s.confidence }
  end
  return json.array(out)
end

-- The whole-clip answer for a recording no longer than the model's clip: exactly what
-- predict.lua computes (same padding and trimming), so the two agree.
function App:clip_probs(path)
  local wav, err = audio.load(path, { sr = self.sr, mono = true, cache = false,
    seconds = self.trim and loader.trim_lookahead(self.seconds) or self.seconds })
  if not wav then return nil, err end
  if self.trim then wav = loader.trim_window(wav, math.floor(self.seconds * self.sr + 0.5), self.trim) end
  local x = checkpoint.transform(self.features, wav:view(1, -1))
  return base.no_grad(function() return self.model(x):softmax(2) end):totable()[1]
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
    local st = self:stream()
    local wins, segs, probs
    if duration <= self.seconds + 1e-6 then
      -- one window, the clip itself: predict.lua's answer, computed once
      probs = assert(self:clip_probs(path))
      local k = argmax(probs)
      local voiced = not self.vad or (n > 0 and wav:pow(2):mean():item() ^ 0.5 > st.gate)
      wins = { { start = 0, stop = duration, voiced = voiced, probs = voiced and probs or nil,
                 label = voiced and self.classes[k] or nil, confidence = voiced and probs[k] or nil } }
      segs = voiced and { { start = 0, stop = duration, label = self.classes[k], confidence = probs[k] } } or {}
    else
      wins, segs = st:push(wav)
      local w2, s2 = st:finish()
      for _, w in ipairs(w2) do wins[#wins + 1] = w end
      for _, s in ipairs(s2) do segs[#segs + 1] = s end
      -- a longer recording: the mean over its voiced windows (all windows when none is)
      local sum, count = {}, 0
      local any_voiced = false
      for _, w in ipairs(wins) do any_voiced = any_voiced or w.voiced end
      for _, w in ipairs(wins) do
        if w.voiced or not any_voiced then
          local a = math.floor(w.start * self.sr + 0.5)
          local p = w.probs or st:classify(wav:narrow(1, a + 1, math.min(st.win, n - a)))
          for k = 1, #p do sum[k] = (sum[k] or 0) + p[k] end
          count = count + 1
        end
      end
      probs = {}
      for k = 1, #self.classes do probs[k] = sum[k] / count end
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
  if rate ~= self.sr then
    return fail(400, "rate %s: this model takes %d Hz audio (record or resample at %d Hz)", tostring(req.args.rate),
      self.sr, self.sr)
  end
  local format = req.args.format or "f32"
  if format ~= "f32" and format ~= "s16" then
    return fail(400, "format '%s' is not a sample format (expected f32 or s16, little-endian)", format)
  end
  local id = new_id()
  self.sessions[id] = { st = self:stream(), format = format, used = self.clock() }
  self.n_sessions = self.n_sessions + 1
  return { status = 201, json = { id = id, rate = self.sr, format = format, window = self.window, hop = self.hop,
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
    local ok, x = pcall(http.pcm, req.body, s.format)
    if not ok then return fail(400, "%s", (tostring(x):gsub("^http%.pcm: pcm: ", ""))) end
    wins, segs = s.st:push(x)
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
