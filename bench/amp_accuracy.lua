-- How far amp (bf16 GEMM inputs, fp32 accumulation and master weights) moves
-- the three models from fp32: logits and gradients of one batch, then the
-- loss after a short overfit of one fixed batch from the same initial
-- weights, and the time of a training step both ways (same process, same load).
--
--   serlua bench/amp_accuracy.lua [--steps 30] [--models cnn2d,crnn,cnn1d]
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local cnn = require "ser.core.nn_cnn"

local argparse = require "argparse"
local parser = argparse("amp_accuracy.lua", "How far amp moves the three models from fp32 (logits, gradients, "
  .. "a short overfit's loss) and the time of a training step both ways")
parser:option("--steps", "overfitting steps of one fixed batch", "30")
parser:option("--models", "comma-separated models", "cnn2d,crnn,cnn1d")
local opts = parser:parse(arg)
if not cnn.bf16_supported() then
  print("this CPU has no AVX512-BF16: amp runs fp32, nothing to compare")
  return
end

local shapes = { cnn2d = { 8, 1, 64, 251 }, crnn = { 8, 1, 64, 251 }, cnn1d = { 8, 1, 64000 } }
local function num(v) return type(v) == "number" and v or v:item() end
local function rel(a, b) return num((a - b):abs():max()) / math.max(num(b:abs():max()), 1e-30) end

local function run(name, amp, x, y, steps)
  ser.manual_seed(1) -- the same initial weights and dropout masks both ways
  local model = ser.models.create(name, { classes = 8 })
  local opt = ser.optim.AdamW(model:parameters(), { lr = 1e-3, weight_decay = 1e-4 })
  ser.set_amp(amp)
  local logits = model(x)
  local loss = F.cross_entropy(logits, y)
  loss:backward()
  local grads = {}
  for i, p in ipairs(model:parameters()) do grads[i] = p:grad():clone() end
  opt:step()
  local t0, c0 = cnn.monotonic(), os.clock()
  for _ = 2, steps do
    opt:zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss:backward()
    opt:step()
  end
  local dt, dc = (cnn.monotonic() - t0) / (steps - 1), (os.clock() - c0) / (steps - 1)
  ser.set_amp(false)
  return logits:detach(), grads, num(loss), dt, dc
end

print(("%-6s %11s %14s %10s %10s  %-28s %s"):format("model", "logits rel", "grad rel (L2)", "loss fp32", "loss amp",
  "step wall s fp32/amp", "step CPU s fp32/amp"))
for name in opts.models:gmatch("[^,]+") do
  ser.manual_seed(7)
  local x = T.randn(shapes[name])
  local y = T.new { 1, 2, 3, 4, 5, 6, 7, 8 }
  local l32, g32, loss32, t32, c32 = run(name, false, x, y, tonumber(opts.steps))
  local l16, g16, loss16, t16, c16 = run(name, true, x, y, tonumber(opts.steps))
  -- gradients as one vector: ||amp - fp32|| / ||fp32||. (Per tensor, the conv
  -- biases in front of a BatchNorm have a true gradient of 0 and only
  -- rounding noise, so a per-tensor ratio there means nothing.)
  local d2, n2 = 0, 0
  for i = 1, #g32 do
    local d = g16[i] - g32[i]
    d2 = d2 + num((d * d):sum())
    n2 = n2 + num((g32[i] * g32[i]):sum())
  end
  local worst = math.sqrt(d2 / n2)
  print(("%-6s %11.2e %14.2e %10.4f %10.4f  %6.3f/%.3f (%.2fx)          %6.3f/%.3f (%.2fx)"):format(name, rel(l16, l32),
    worst, loss32, loss16, t32, t16, t32 / t16, c32, c16, c32 / c16))
end
