-- amp's measured rule on this machine: runs one amp training step and one
-- inference of each model (which measures every shape class they meet that the
-- table does not hold yet), then prints the table: per class the transpositions,
-- the bands of M, N, K (or Co, Ci for the 3x3 Winograd convolution), the
-- measured microseconds of the fp32 and the bf16 kernel on the class's
-- representative product, their ratio and the decision (docs/engine.md,
-- "amp's measured rule").
--
--   serlua bench/amp_rule.lua [--models cnn2d,crnn,cnn1d] [--fresh]
--
-- --fresh measures into a new temporary table (SER_AMP_TABLE is ignored and
-- the cache left alone), so the output is what a first run here decides.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local cnn = require "ser.core.nn_cnn"

local opts = { models = "cnn2d,crnn,cnn1d", fresh = false }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--help" or a == "-h" then
    print("usage: serlua bench/amp_rule.lua [--models cnn2d,crnn,cnn1d] [--fresh]")
    return
  elseif a == "--fresh" then opts.fresh = true
  elseif a == "--models" and arg[i + 1] then opts.models = arg[i + 1]; i = i + 1
  else error("amp_rule.lua: unknown argument " .. a .. " (see --help)") end
  i = i + 1
end
if not cnn.bf16_supported() then
  print("this CPU has no AVX512-BF16: amp runs fp32, there is no rule to show")
  return
end
if opts.fresh then
  -- a new process with its own table: the rule reads SER_AMP_TABLE at first use
  local tmp = os.tmpname()
  os.remove(tmp)
  local self = arg[0]
  local cmd = ("SER_AMP_TABLE=%q %q %q --models %q"):format(tmp .. ".tsv", arg[-1] or "serlua", self, opts.models)
  local ok = os.execute(cmd)
  os.remove(tmp .. ".tsv")
  os.remove(tmp .. ".tsv.lock")
  os.exit(ok and 0 or 1)
end

print("GEMM: " .. ser.gemm_info())
local shapes = { cnn2d = { 8, 1, 64, 251 }, crnn = { 8, 1, 64, 251 }, cnn1d = { 8, 1, 64000 } }
ser.set_amp(true)
for name in opts.models:gmatch("[^,]+") do
  local shape = shapes[name] or error("amp_rule.lua: unknown model " .. name)
  ser.manual_seed(1)
  local model = ser.models.create(name, { classes = 8 })
  local x, y = T.randn(shape), T.new { 1, 2, 3, 4, 5, 6, 7, 8 }
  local t0 = cnn.monotonic()
  F.cross_entropy(model(x), y):backward()
  model:eval()
  ser.no_grad(function() return model(x), model(T.randn(1, table.unpack(shape, 2))) end)
  print(("%s: one step and inference in %.2f s (first-use measurements included)"):format(name, cnn.monotonic() - t0))
end
ser.set_amp(false)

local path = ser.gemm_info():match("table (.-)%)$")
local f = path and io.open(path)
if not f then
  print("no table file (" .. tostring(path) .. "): the table lives in memory only")
  return
end
local bands = { "16-31", "32-63", "64-127", "128-255", "256-511", ">=512" }
print(("%-6s %-8s %-8s %-8s %-8s %10s %10s %6s  %s"):format("class", "kind", "M|Co", "N|Ci", "K", "fp32 us",
  "bf16 us", "ratio", "decision"))
local n, nb = 0, 0
for line in f:lines() do
  local c, tf, tb, d = line:match("^(%d+)\t(%S+)\t(%S+)\t(%a+%d*)$")
  if c then
    c = tonumber(c)
    local kind, a, b, k
    if c >= 864 then
      local w = c - 864
      kind, a, b, k = "wino3x3", bands[w // 6 + 1], bands[w % 6 + 1], "-"
    else
      local t = c // 216
      kind = ({ "A B", "A B^T", "A^T B", "A^T B^T" })[t + 1]
      a, b, k = bands[c // 36 % 6 + 1], bands[c // 6 % 6 + 1], bands[c % 6 + 1]
    end
    print(("%-6d %-8s %-8s %-8s %-8s %10.1f %10.1f %6.2f  %s"):format(c, kind, a, b, k, tonumber(tf), tonumber(tb),
      tonumber(tb) / math.max(tonumber(tf), 1e-9), d))
    n, nb = n + 1, nb + (d == "bf16" and 1 or 0)
  end
end
f:close()
print(("%d classes: %d bf16, %d fp32 (table %s)"):format(n, nb, n - nb, path))
