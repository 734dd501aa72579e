-- Our side of bench/bench_audio.sh: clips per second of the audio front end.
--   serlua bench/bench_audio.lua --files DIR --threads 1,2 --batch 64 --repeats 5
-- Prints "RESULT side=ours task=... threads=... clips_s=..." lines (medians of
-- the repeats) for: decode (48 kHz WAV -> 16 kHz, 4 s, cache off), logmel and
-- mfcc per clip ([T] calls) and batched ([B, T] calls), pitch shift (+2
-- semitones, batched).
local argparse = require "argparse"
local ser = require "ser"
local T = ser.tensor

local p = argparse("bench_audio.lua", "Audio front-end throughput (our side)")
p:option("--files", "Folder of 48 kHz WAV files to decode")
p:option("--threads", "Thread counts, comma separated", "1,2")
p:option("--batch", "Clips per batched call", "64")
p:option("--repeats", "Timed repeats (median reported)", "5")
local a = p:parse()

-- wall clock (os.clock is CPU time over all threads)
local clock = require("ser.core.nn_cnn").monotonic

local function median(v)
  table.sort(v)
  return v[(#v + 1) // 2]
end

-- Median clips/s over the repeats, by wall clock and by CPU time (os.clock:
-- the process's CPU seconds; on one thread that is the clip's own cost even
-- when other jobs share the machine).
local function timed(fn, count, repeats)
  fn() -- warm up: plans, caches, first-touch of memory
  local rates, cpu = {}, {}
  for r = 1, repeats do
    local t0, c0 = clock(), os.clock()
    fn()
    rates[r] = count / (clock() - t0)
    cpu[r] = count / math.max(os.clock() - c0, 1e-9)
  end
  return median(rates), median(cpu)
end

local function result(task, threads, rate, cpu)
  print(("RESULT side=ours task=%s threads=%d clips_s=%.1f cpu_clips_s=%.1f"):format(task, threads, rate, cpu))
end

local B, R = tonumber(a.batch), tonumber(a.repeats)
ser.manual_seed(1)
local wav = T.randn(B, 64000) * 0.1
local clips = {}
for i = 1, B do clips[i] = wav:select(1, i):contiguous() end

local paths = {}
if a.files then
  for f in io.popen("ls " .. a.files .. "/*.wav"):lines() do paths[#paths + 1] = f end
end

for th in a.threads:gmatch("%d+") do
  local n = tonumber(th)
  ser.set_num_threads(n)
  if #paths > 0 then
    result("decode", n, timed(function()
      local _, errs = ser.audio.load_many(paths, { sr = 16000, seconds = 4, cache = false })
      assert(not errs, "decode failed")
    end, #paths, R))
  end
  if n == 1 then
    result("logmel_clip", n, timed(function() for i = 1, B do ser.features.logmel(clips[i]) end end, B, R))
    result("mfcc_clip", n, timed(function() for i = 1, B do ser.features.mfcc(clips[i]) end end, B, R))
  end
  result("logmel_batch", n, timed(function() ser.features.logmel(wav) end, B, R))
  result("mfcc_batch", n, timed(function() ser.features.mfcc(wav) end, B, R))
  local pb = wav:narrow(1, 1, math.min(B, 16))
  result("pitch", n, timed(function() ser.augment.pitch_shift(pb, 16000, 2) end, pb:shape()[1], math.max(1, R // 2)))
end
