-- Written with serlua at commit 88920c7, before CRNN and CNN1D took the notebook's names:
--   build/serlua tests/data/old_layout/make.lua tests/data/old_layout
-- It reproduces the files only with that commit's ser.models (features.* / fc / classifier.*);
-- with later code it writes the new names. The weights are rounded to 1/16 so git compresses them.
local ser = require "ser"
local T = ser.tensor
local out = arg[1]
local function quantise(m)   -- few distinct values: the files compress well in git
  for _, t in pairs(m:state_dict()) do
    local v = t:totable()
    local function q(x) return math.floor(x * 16 + 0.5) / 16 end
    local function walk(a) for i, x in ipairs(a) do if type(x) == "table" then walk(x) else a[i] = q(x) end end end
    if type(v) == "table" then walk(v); t:copy_(T.new(v)) end
  end
end
local function input(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local v = {}
  for i = 1, n do v[i] = math.sin(i * 0.37) + 0.5 * math.cos(i * 0.011) end
  return T.new(v):view(shape)
end
local classes = { "neutral", "happy", "sad", "angry" }
for _, c in ipairs {
  { "crnn", "crnn", function() return ser.models.CRNN{ classes = 4, hidden = 8 } end, { 2, 1, 64, 48 } },
  { "crnn_bn_stats", "crnn", function() return ser.models.CRNN{ classes = 4, hidden = 8, batchnorm = true, dropout = 0.3,
    time = "stats" } end, { 2, 1, 64, 48 } },
  { "cnn1d", "cnn1d", function() return ser.models.CNN1D{ classes = 4 } end, { 2, 1, 4000 } },
} do
  ser.manual_seed(21)
  local m = c[3]()
  local x = input(c[4])
  m:train()
  ser.no_grad(function() return m(x * 0.5 + 0.1) end)   -- BatchNorm statistics that matter
  ser.no_grad(function() quantise(m) end)
  m:eval()
  local y = ser.no_grad(function() return m(x) end)
  ser.train.save_checkpoint(out .. "/" .. c[1] .. ".safetensors", m, classes, { name = c[2] }, 3)
  y:tofile(out .. "/" .. c[1] .. "_logits.f32")
  print(c[1], table.concat(y:shape(), "x"), y:totable()[1][1])
end
