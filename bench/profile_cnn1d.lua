-- Where one CNN1D training step's time goes: every layer's forward, and its
-- backward split into the input gradient and the weight gradient, the head,
-- the loss, the optimiser, and the data path, each timed on its own (median
-- of R repeats, wall and CPU seconds), next to the whole step timed as
-- bench/bench_train.lua times it. The parts are run through the same modules
-- and autograd ops as a real step (nn.Sequential's fused BatchNorm+ReLU
-- included), so their sum should come close to the step; what is left over
-- is the Lua side, the tape and the allocations between the ops.
--
--   serlua bench/profile_cnn1d.lua [--threads 1,2] [--amp] [--repeats 5] [--data DIR] [--batch 8]
--
-- A backward is timed alone by running its op's forward on a leaf copy of the
-- op's real input first (untimed), then backward with a fixed random gradient:
-- "input grad" with the layer's parameters frozen, "weight grad" with the
-- input not requiring a gradient, "both" as the real step runs it. --data
-- (default ../shared/data/ravdess16k, skipped when absent) adds the loader's
-- cost of a waveform batch (decoded clips in memory -> z-normalised [B,1,N]),
-- which the prefetch worker overlaps with training on another core.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local cnn = require "ser.core.nn_cnn"
local clock = cnn.monotonic

local args = { threads = "1", amp = false, repeats = 5, data = "../shared/data/ravdess16k", batch = 8 }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then
    print("usage: serlua bench/profile_cnn1d.lua [--threads 1,2] [--amp] [--repeats 5] [--data DIR] [--batch 8]")
    print("Times each part of a CNN1D training step on its own (see the comment at the top of this file).")
    os.exit(0)
  elseif a == "--amp" then args.amp = true
  elseif a:match("^%-%-") and arg[i + 1] and args[a:sub(3)] ~= nil then
    args[a:sub(3)] = arg[i + 1]
    i = i + 1
  else
    io.stderr:write(("profile_cnn1d.lua: unknown argument '%s' (see --help)\n"):format(a))
    os.exit(2)
  end
  i = i + 1
end
args.repeats, args.batch = tonumber(args.repeats), tonumber(args.batch)
if not args.repeats or args.repeats < 1 or not args.batch or args.batch < 2 then
  io.stderr:write("profile_cnn1d.lua: --repeats must be >= 1 and --batch >= 2\n")
  os.exit(2)
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

-- Median wall and CPU seconds of run(setup()), setup and teardown untimed; two warm-up calls.
local function measure(setup, run, teardown)
  local wall, cpu = {}, {}
  for r = -1, args.repeats do
    local s = setup and setup() or nil
    collectgarbage()
    local t0, c0 = clock(), os.clock()
    run(s)
    if r >= 1 then wall[#wall + 1], cpu[#cpu + 1] = clock() - t0, os.clock() - c0 end
    if teardown then teardown() end
  end
  return median(wall), median(cpu)
end

ser.manual_seed(0)
local B = args.batch
local model = ser.models.CNN1D{ classes = 8 }
model:train()
local params = model:parameters()
local opt = ser.optim.AdamW(params, { lr = 1e-3, weight_decay = 1e-4 })
if args.amp then ser.set_amp(true) end
local x = T.randn(B, 1, 64000)
local y = T.new { 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8 }:narrow(1, 1, B)
local net = model.net
local convs, bns = {}, {}
for l = 1, 4 do convs[l], bns[l] = net:get(3 * l - 2), net:get(3 * l - 1) end
local pool = net:get(13)

-- The inputs each layer sees in a real step (forward without a tape).
local acts = ser.no_grad(function()
  local a = { x }
  local h = x
  for l = 1, 4 do
    local c = convs[l](h)
    a[#a + 1] = c
    h = bns[l]:forward_relu(c)
    a[#a + 1] = h
  end
  return a
end)
-- a[1] input of conv1, a[2l] conv l's output (BN l's input), a[2l+1] BN l's output

local function leaf(t, grad) return t:detach():requires_grad(grad) end
local function set_params(m, on) for _, p in ipairs(m:parameters()) do p:requires_grad(on) end end
local function gout_of(t) return T.randn(t:shape()) end

local rows = {}
local function add(name, w, c) rows[#rows + 1] = { name = name, wall = w, cpu = c } end

for th in tostring(args.threads):gmatch("%d+") do
  ser.set_num_threads(tonumber(th))
  rows = {}
  -- the whole step, as bench_train.lua
  local step_w, step_c = measure(nil, function()
    opt:zero_grad()
    F.cross_entropy(model(x), y):backward()
    opt:step()
  end)
  local sum_w, sum_c = 0, 0
  local function part(name, setup, run, teardown)
    local w, c = measure(setup, run, teardown)
    add(name, w, c)
    sum_w, sum_c = sum_w + w, sum_c + c
  end
  for l = 1, 4 do
    local xin, cin = acts[2 * l - 1], acts[2 * l]
    part(("conv%d forward     [%d,%d,%d]"):format(l, B, convs[l].in_channels or xin:shape()[2], xin:shape()[3]),
      function() return leaf(xin, l > 1) end, function(s) return convs[l](s) end)
    part(("bn+relu%d forward"):format(l), function() return leaf(cin, true) end,
      function(s) return bns[l]:forward_relu(s) end)
  end
  part("pool+head+loss forward", function() return leaf(acts[9], true) end,
    function(s) return F.cross_entropy(model.fc(pool(s)), y) end)
  part("pool+head+loss backward", function() return F.cross_entropy(model.fc(pool(leaf(acts[9], true))), y) end,
    function(loss) loss:backward() end)
  for l = 4, 1, -1 do
    local xin, cin = acts[2 * l - 1], acts[2 * l]
    local gb, gc = gout_of(acts[2 * l + 1]), gout_of(cin)
    part(("bn+relu%d backward (input + weight)"):format(l), function() return bns[l]:forward_relu(leaf(cin, true)) end,
      function(o) o:backward(gb) end)
    if l > 1 then
      -- the engine asks requires_grad when the backward runs: the parameters stay frozen until then
      part(("conv%d backward, input grad only"):format(l), function()
        set_params(convs[l], false)
        return convs[l](leaf(xin, true))
      end, function(o) o:backward(gc) end, function() set_params(convs[l], true) end)
    end
    local name = l > 1 and ("conv%d backward, weight grad only"):format(l) or "conv1 backward, weight grad (no input grad)"
    part(name, function() return convs[l](leaf(xin, false)) end, function(o) o:backward(gc) end)
    if l > 1 then -- shown for comparison with the two above; not added to the sum (they are its parts)
      local w, c = measure(function() return convs[l](leaf(xin, true)) end, function(o) o:backward(gc) end)
      add(("  (conv%d backward, both as in the step)"):format(l), w, c)
    end
  end
  model:zero_grad()
  F.cross_entropy(model(x), y):backward()
  part("AdamW step", nil, function() opt:step() end)
  part("zero_grad", nil, function() opt:zero_grad() end)
  opt:zero_grad()

  print(("CNN1D training step, batch %d, %s thread%s, %s; %s"):format(B, th, th == "1" and "" or "s",
    cnn.amp() and "amp (bf16 GEMMs)" or "fp32", ser.blas_info()))
  print(("%-42s %10s %10s %7s"):format("part", "wall ms", "CPU ms", "% step"))
  for _, r in ipairs(rows) do
    print(("%-42s %10.1f %10.1f %6.1f%%"):format(r.name, 1000 * r.wall, 1000 * r.cpu, 100 * r.cpu / step_c))
  end
  print(("%-42s %10.1f %10.1f %6.1f%%"):format("sum of the parts", 1000 * sum_w, 1000 * sum_c, 100 * sum_c / step_c))
  print(("%-42s %10.1f %10.1f %6.1f%%"):format("whole step (forward, loss, backward, AdamW)", 1000 * step_w,
    1000 * step_c, 100.0))
  print(("RESULT threads=%s amp=%s step_ms=%.1f step_cpu_ms=%.1f parts_cpu_ms=%.1f"):format(th,
    tostring(cnn.amp()), 1000 * step_w, 1000 * step_c, 1000 * sum_c))
  io.stdout:flush()
end

-- The data path: a waveform loader over real clips, as fit builds it for CNN1D.
local fs = require "ser.core.fs"
if args.data ~= "" and fs.is_dir(args.data) then
  local corpus = ser.data.scan(args.data)
  local train = corpus:split{ by = "speaker", train = { 1, 16 }, val = { 17, 20 }, quiet = true }
  local L = ser.data.loader(train, { batch = B, shuffle = true, seed = 1, transform = { kind = "waveform", normalize = true },
    prefetch = false })
  local t0 = clock()
  L:waveforms()
  local decode = clock() - t0
  local n = 0
  local w, c = measure(nil, function() n = 0; for _ in L:iter(1) do n = n + 1 end end)
  print(("data path (%s): decode + resample %d clips once %.1f s; then per epoch %.2f s wall, %.2f s CPU for %d " ..
    "batches = %.1f ms CPU per batch (z-normalise, gather, stack; overlapped by the prefetch worker in fit)")
    :format(args.data, #train.items, decode, w, c, n, 1000 * c / n))
  L:close()
else
  print(("data path: %s absent, not measured"):format(args.data))
end
