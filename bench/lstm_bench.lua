-- The CRNN's BiLSTM (batch_first, input 128, hidden 128, batch 8, 31 steps =
-- 251 frames after three 2x pools), ours vs PyTorch 1.13 in one invocation:
-- forward + backward (loss sum(out * R)) and no-grad forward, medians of
-- REPEATS x 10 calls, 1 and 2 threads, printed side by side with the ratio.
--   serlua bench/lstm_bench.lua [--batch 8] [--steps 31] [--repeats 7] [--python /usr/bin/python3]
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional

local argparse = require "argparse"
local parser = argparse("lstm_bench.lua", "The CRNN's BiLSTM, ours vs PyTorch 1.13 in one invocation")
parser:option("--batch", "batch size", "8")
parser:option("--steps", "time steps", "31")
parser:option("--repeats", "repeats of 10 calls (the median is printed)", "7")
parser:option("--python", "the Python with torch 1.13", "/usr/bin/python3")
local args = parser:parse(arg)
local B, S, reps = tonumber(args.batch), tonumber(args.steps), tonumber(args.repeats)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

-- wall clock (os.clock would sum the CPU time of all threads)
local wall = require("ser.train.progress").now

local function median(v)
  table.sort(v)
  return v[(#v + 1) // 2]
end

ser.manual_seed(0)
local lstm = ser.nn.LSTM(128, 128, { batch_first = true, bidirectional = true })
local x = T.randn(B, S, 128):requires_grad(true)
local R = T.randn(B, S, 256)

local function fwd_bwd()
  local out = lstm(x)
  local loss = (out * R):sum()
  loss:backward()
end
local function fwd() ser.no_grad(function() lstm(x) end) end

local function time_ms(fn)
  for _ = 1, 3 do fn() end
  local t = {}
  for r = 1, reps do
    local t0 = wall()
    for _ = 1, 10 do fn() end
    t[r] = (wall() - t0) / 10 * 1e3
  end
  return median(t)
end

print(("LSTM bench: BiLSTM(128 -> 128) batch_first, B=%d, T=%d; %s"):format(B, S, ser.blas_info()))
print(("%-8s %-10s %10s %10s %8s"):format("threads", "pass", "ours ms", "torch ms", "speedup"))
for _, th in ipairs { 1, 2 } do
  ser.set_num_threads(th)
  local ours = { fwd_bwd_ms = time_ms(fwd_bwd), fwd_ms = time_ms(fwd) }
  local p = assert(io.popen(("OPENBLAS_NUM_THREADS=1 %s %slstm_bench.py %d %d %d %d"):format(args.python, here, th, B,
    S, reps)))
  local line = p:read("a")
  p:close()
  for _, k in ipairs { "fwd_bwd_ms", "fwd_ms" } do
    local theirs = tonumber(line:match(k .. "=([%d.]+)"))
    print(("%-8d %-10s %10.3f %10s %8s"):format(th, k:gsub("_ms", ""), ours[k], theirs and ("%.3f"):format(theirs) or "?",
      theirs and ("%.2fx"):format(theirs / ours[k]) or "?"))
  end
end
