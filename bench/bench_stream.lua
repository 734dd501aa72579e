-- Streaming emotion (ser.stream) on one thread: real-time factor, per-window compute time,
-- the delay from a sample to its label, and peak memory after 1 and 10 minutes of input, per
-- model kind (the default recipes' CNN2D, CRNN, CNN1D, and the whisper family when the encoder
-- folder exists). The weights are the recipes' initial ones: timing does not depend on them.
-- Input: RAVDESS speech from ../shared/data/ravdess16k (clips with 1.5 s of silence between),
-- else the synthetic corpus's clips, repeated to the length asked for, pushed 0.1 s at a time
-- as a live source would deliver it.
--
--   SER_NUM_THREADS=1 serlua bench/bench_stream.lua [--models cnn2d,crnn,cnn1d,whisper] [--minutes 1]
--       [--memory] [--encoder DIR]
-- --memory runs each model in a child process for 1 and for 10 minutes and reports its peak RSS,
-- the bytes the C core holds (ser.memory()) and Lua's heap at the end.
local ser = require "ser"
local T = ser.tensor

local opts = { models = "cnn2d,crnn,cnn1d,whisper", minutes = "1", encoder = nil, memory = false, child = nil }
local i = 1
while i <= #arg do
  local k = arg[i]:match("^%-%-(.+)$")
  if k == "help" then
    print("usage: serlua bench/bench_stream.lua [--models cnn2d,crnn,cnn1d,whisper] [--minutes N] [--memory] " ..
      "[--encoder DIR]")
    os.exit(0)
  elseif k == "memory" then
    opts.memory, i = true, i + 1
  elseif k and arg[i + 1] and (k == "models" or k == "minutes" or k == "encoder" or k == "child") then
    opts[k], i = arg[i + 1], i + 2
  else
    io.stderr:write("bench_stream.lua: bad argument " .. tostring(arg[i]) .. " (see --help)\n")
    os.exit(2)
  end
end

local here = arg[0]:match("^(.*/)bench/") or "./"
local ravdess = "../shared/data/ravdess16k"
local function default_encoder()
  for _, d in ipairs { "../shared/models/whisper-base", "models/whisper-base" } do
    if ser.fs.is_dir(d) then return d end
  end
end
local encoder = opts.encoder or default_encoder()

local classes = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }

-- A checkpoint of the kind's default recipe (initial weights), through the same save/load
-- path as compare.lua's, so that the stream sees what it would see for a trained model.
local function checkpoint(kind, dir)
  local sets = {}
  if kind == "whisper" then sets[#sets + 1] = { "model.encoder", encoder, source = "--encoder" } end
  local r = ser.recipe.resolve(here .. "experiments/recipes/" .. kind .. ".lua", sets)
  ser.manual_seed(1)
  local model = ser.recipe.build_model(r, #classes)
  local path = ("%s/%s.safetensors"):format(dir, kind)
  ser.train.save_checkpoint(path, model, classes, { name = r.name, seconds = r.data.seconds, sr = r.data.sr,
    trim = ser.recipe.trim(r), normalize = r.data.normalize, meta = { recipe = ser.recipe.to_meta(r) } }, 1, {})
  return path
end

-- About a minute of speech with silences between clips, at 16 kHz.
local function speech()
  local parts, n = {}, 0
  if ser.fs.is_dir(ravdess) then
    for a = 1, 4 do
      for _, e in ipairs { "01", "03", "05", "04" } do
        local p = ("%s/Actor_%02d/03-01-%s-02-01-01-%02d.flac"):format(ravdess, a, e, a)
        local w = ser.audio.load(p, { sr = 16000 })
        if w then parts[#parts + 1] = w; parts[#parts + 1] = T.zeros(24000); n = n + 1 end
      end
    end
  end
  local source = "RAVDESS actors 1-4"
  if n == 0 then
    local c = ser.data.synthetic { speakers = 2, per_class = 1, classes = 8, seconds = 3.0, seed = 1 }
    for r = 1, c.audio:shape()[1] do parts[#parts + 1] = c.audio:select(1, r); parts[#parts + 1] = T.zeros(24000) end
    source = "synthetic clips"
  end
  return T.cat(parts, 1), source
end

local function peak_rss_kb()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

-- Streams `minutes` of input through the checkpoint, 0.1 s per push. Returns the statistics.
local function measure(path, minutes)
  local model, meta = assert(ser.train.load_checkpoint(path))
  local st = ser.stream.new(model, meta, { rate = 16000 })
  local signal = speech()
  local total = math.floor(minutes * 60 * 16000)
  local block, at, pos = 1600, 0, 0
  local times, n_windows, n_scored, n_segments = {}, 0, 0, 0
  local delays = {}
  local clock = os.clock
  local t0 = clock()
  local function account(ws, segs)
    n_windows = n_windows + #ws
    for _, w in ipairs(ws) do if w.voiced then n_scored = n_scored + 1 end end
    n_segments = n_segments + #segs
  end
  while at < total do
    local n = math.min(block, total - at, signal:shape()[1] - pos)
    local t1 = clock()
    local ws, segs = st:push(signal:narrow(1, pos + 1, n))
    local dt = clock() - t1
    -- a push that completed a scored window: the time of its scoring is what a listener waits
    for _, w in ipairs(ws) do
      if w.voiced then
        times[#times + 1] = dt / #ws
        -- the delay of the earliest sample of the window's cell (hop/2 before its centre): it
        -- arrived at that audio time; its label is out when this push returns, which a live
        -- source reaches at the end of this block plus the push's compute time
        local centre = (w.start + w.stop) / 2
        delays[#delays + 1] = (at + n) / 16000 - (centre - st.hop / st.sr / 2) + dt
      end
    end
    account(ws, segs)
    at, pos = at + n, (pos + n) % signal:shape()[1]
  end
  account(st:finish())
  local elapsed = clock() - t0
  collectgarbage(); collectgarbage()
  local live = ser.memory()
  table.sort(times)
  table.sort(delays)
  local dsum = 0
  for _, d in ipairs(delays) do dsum = dsum + d end
  local sum = 0
  for _, t in ipairs(times) do sum = sum + t end
  return { rtf = elapsed / (total / 16000), mean = #times > 0 and sum / #times or 0,
    p95 = times[math.max(1, math.ceil(#times * 0.95))] or 0, max = times[#times] or 0, windows = n_windows,
    scored = n_scored, segments = n_segments, rss = peak_rss_kb(), window = st.window / st.sr, hop = st.hop / st.sr,
    live = live, lua = collectgarbage("count"), delay_mean = #delays > 0 and dsum / #delays or 0,
    delay_max = delays[#delays] or 0 }
end

if opts.child then
  local r = measure(opts.child, tonumber(opts.minutes))
  print(("RESULT %.5f %.5f %.5f %.5f %d %d %d %d %.3f %.3f %d %.0f %.4f %.4f"):format(r.rtf, r.mean, r.p95, r.max,
    r.windows, r.scored, r.segments, r.rss, r.window, r.hop, r.live, r.lua, r.delay_mean, r.delay_max))
  os.exit(0)
end

local dir = os.tmpname()
os.remove(dir)
assert(ser.fs.mkdir_p(dir))
local _, source = speech()
local cpu = io.popen("lscpu | sed -n 's/^Model name: *//p'"):read("l") or "?"
print(("ser.stream on %s, SER_NUM_THREADS=%s, input: %s, pushed 0.1 s at a time"):format(cpu,
  os.getenv("SER_NUM_THREADS") or "(all)", source))
print("rtf = processing seconds / audio seconds (CPU time of this process); window ms: the scoring time of a " ..
  "voiced window (mean / p95 / max); delay s (mean / max over scored windows): from the arrival of the earliest " ..
  "sample of a window's cell (hop/2 before its centre) to its label, on the audio clock of a live source: the " ..
  "end of the block that completes the window plus that push's compute time (bound: window/2 + hop/2 + block + " ..
  "scoring)")
print(("%-8s %7s %8s %8s %8s %9s %8s %12s %10s %10s %15s %15s"):format("model", "minutes", "rtf", "mean ms", "p95 ms",
  "max ms", "scored", "delay s", "RSS 1 min", "RSS 10 min", "ser MB 1/10", "Lua MB 1/10"))
local self_cmd = ("%s %sbench/bench_stream.lua"):format(arg[-1] or "serlua", here)
local function child(path, minutes)
  local p = io.popen(("%s --child %s --minutes %s 2>&1"):format(self_cmd, path, minutes))
  local out = p:read("a")
  p:close()
  local v = {}
  for x in (out:match("RESULT ([^\n]+)") or ""):gmatch("%S+") do v[#v + 1] = tonumber(x) end
  if #v < 14 then error("child run failed:\n" .. out, 0) end
  return { rtf = v[1], mean = v[2], p95 = v[3], max = v[4], windows = v[5], scored = v[6], segments = v[7], rss = v[8],
    window = v[9], hop = v[10], live = v[11], lua = v[12], delay_mean = v[13], delay_max = v[14] }
end
for kind in opts.models:gmatch("[^,]+") do
  if kind == "whisper" and not encoder then
    print(("%-8s skipped: no encoder folder (../shared/models/whisper-base, models/whisper-base or --encoder)")
      :format(kind))
  else
    local path = checkpoint(kind, dir)
    local r = child(path, opts.minutes)
    local r10 = opts.memory and child(path, 10) or nil
    local r1 = opts.memory and (tonumber(opts.minutes) == 1 and r or child(path, 1)) or nil
    print(("%-8s %7s %8.4f %8.1f %8.1f %9.1f %8d %12s %10s %10s %15s %15s"):format(kind, opts.minutes, r.rtf,
      r.mean * 1e3, r.p95 * 1e3, r.max * 1e3, r.scored, ("%.2f / %.2f"):format(r.delay_mean, r.delay_max),
      r1 and ("%.1f MB"):format(r1.rss / 1024) or "-", r10 and ("%.1f MB"):format(r10.rss / 1024) or "-",
      r10 and ("%.1f / %.1f"):format(r1.live / 2 ^ 20, r10.live / 2 ^ 20) or "-",
      r10 and ("%.2f / %.2f"):format(r1.lua / 1024, r10.lua / 1024) or "-"))
  end
end
os.execute("rm -rf '" .. dir .. "'")
