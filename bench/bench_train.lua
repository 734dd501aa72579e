-- Training / inference throughput of the three reference models, our side.
-- Run by bench/bench_train.sh next to bench_train.py (PyTorch); prints one
-- "RESULT key=value ..." line per configuration for the shell script to join.
--
--   serlua bench/bench_train.lua --model cnn2d [--threads 1,2] [--amp] [--steps N] [--repeats R]
--
-- Train step = forward, cross-entropy, backward, AdamW step (batch 8). Times
-- are medians over R repeats of N steps each (after warm-up): wall clock, and
-- train_cpu = clips per CPU-second of the training step.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local cnn = require "ser.core.nn_cnn"

local argparse = require "argparse"
local parser = argparse("bench_train.lua", "Training / inference throughput of one reference model (our side "
  .. "of bench/bench_train.sh)")
parser:option("--model", "cnn2d, crnn, cnn1d or cnn1d_fb (CNN1D with the filterbank front end)", "cnn2d")
parser:option("--threads", "comma-separated thread counts", "1,2")
parser:flag("--amp", "bfloat16 GEMMs where amp's rule says they pay")
parser:option("--steps", "steps per repeat", "5")
parser:option("--repeats", "repeats (the median is printed)", "3")
local args = parser:parse(arg)
args.steps, args.repeats = tonumber(args.steps), tonumber(args.repeats)

local shapes = { cnn2d = { 1, 64, 251 }, crnn = { 1, 64, 251 }, cnn1d = { 1, 64000 }, cnn1d_fb = { 1, 64000 } }
local in_shape = shapes[args.model] or error("bench_train.lua: unknown model " .. args.model)
local function batch_shape(b)
  local s = { b }
  for _, d in ipairs(in_shape) do s[#s + 1] = d end
  return s
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

-- Wall seconds per call of fn (median over repeats of `steps` calls) and
-- CPU seconds per call (all threads; on a shared, loaded machine the CPU time
-- at one thread is the steadier measure of the work itself).
local function time_it(fn, steps, repeats)
  fn(); fn() -- warm-up: scratch buffers, allocator, OpenMP pool
  local per, cpu = {}, {}
  for r = 1, repeats do
    collectgarbage()
    local t0, c0 = cnn.monotonic(), os.clock()
    for _ = 1, steps do fn() end
    per[r] = (cnn.monotonic() - t0) / steps
    cpu[r] = (os.clock() - c0) / steps
  end
  return median(per), median(cpu)
end

local function peak_rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)") or 0) / 1024
end

ser.manual_seed(0)
local model = args.model == "cnn1d_fb" and ser.models.create("cnn1d", { classes = 8, frontend = "filterbank" })
  or ser.models.create(args.model, { classes = 8 })
local params = model:parameters()
local opt_name, step
local has_optim, optim = pcall(function() return ser.optim end)
if has_optim and optim and optim.AdamW then
  local opt = optim.AdamW(params, { lr = 1e-3, weight_decay = 1e-4 })
  opt_name = "AdamW"
  step = function() opt:step() end
  function model.zero(_) opt:zero_grad() end
else
  -- ser.optim not built yet: the step is left out on our side and said so.
  opt_name = "none (ser.optim missing)"
  step = function() end
  function model.zero(_) for _, p in ipairs(params) do p:zero_grad() end end
end
if args.amp then
  ser.set_amp(true)
  if not cnn.amp() then print("NOTE amp requested but unavailable; fp32") end
end

local x8, y8 = T.randn(batch_shape(8)), T.new { 1, 2, 3, 4, 5, 6, 7, 8 }
local x1 = T.randn(batch_shape(1))

for th in tostring(args.threads):gmatch("%d+") do
  ser.set_num_threads(tonumber(th))
  model:train()
  ser.reset_peak_memory()
  local live0 = ser.memory()
  local train_s, train_cpu = time_it(function()
    model:zero()
    local loss = F.cross_entropy(model(x8), y8)
    loss:backward()
    step()
  end, args.steps, args.repeats)
  local _, peak = ser.memory()
  model:eval()
  local infer8 = time_it(function() ser.no_grad(function() return model(x8) end) end, args.steps, args.repeats)
  local infer1 = time_it(function() ser.no_grad(function() return model(x1) end) end, args.steps * 4, args.repeats)
  print(("RESULT side=ours model=%s threads=%s amp=%s train=%.2f train_cpu=%.2f infer8=%.2f infer1=%.2f step_mb=%.1f rss_mb=%.0f opt=%s")
    :format(args.model, th, tostring(cnn.amp()), 8 / train_s, 8 / train_cpu, 8 / infer8, 1 / infer1,
      (peak - live0) / 2 ^ 20, peak_rss_mb(), (opt_name:gsub(" ", "_"))))
  io.stdout:flush()
end
