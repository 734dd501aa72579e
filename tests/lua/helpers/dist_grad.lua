-- One training step's gradient, for tests/lua/dist_spec.lua: on one process over the
-- whole batch, or under `mpirun -n N` through ser.train.parallel, each process taking its
-- share (uneven when the batch does not divide). Class weights and label smoothing make
-- the global mean a weighted one, so the shares must be weighted by their denominators.
-- Writes the flat gradient and the model's buffers (BatchNorm running statistics).
--   serlua dist_grad.lua --model crnn|cnn2d --rows N --out FILE [--sync-bn] [--compress bf16|fp16]
local ser = require "ser"
local argparse = require "argparse"
local parallel = require "ser.train.parallel"
local optim_c = require "ser.core.optim"
local T, F, dist = ser.tensor, ser.nn.functional, ser.dist

local p = argparse("dist_grad.lua", "One step's gradient on one or N processes (see dist_spec.lua).")
p:option("--model", "crnn or cnn2d.", "cnn2d")
p:option("--rows", "Examples in the global batch.", "9"):convert(tonumber)
p:option("--out", "Where rank 0 writes the gradient and buffers.")
p:option("--compress", "Gradient compression: none, bf16, fp16.", "none")
p:flag("--sync-bn", "Synchronised BatchNorm.")
local a = p:parse(arg)

local rank, size = dist.init()
ser.manual_seed(11)
local classes = 4
local x = T.randn(a.rows, 1, 64, 24)
local labels = {}
for i = 1, a.rows do labels[i] = (i * 7) % classes + 1 end
local weight = T.new({ 0.5, 1.0, 2.0, 1.5 })
local model = ser.models.create(a.model, { classes = classes })
model:apply(function(m) if m.__name == "Dropout" then m.p = 0 end end)
model:train()
local params = model:parameters()

local rows = {}
for i = 1, a.rows do rows[i] = i end
local mine = dist.shard(rows, rank, size)
local xs, ys = {}, {}
for k, i in ipairs(mine) do xs[k], ys[k] = x:narrow(1, i, 1), labels[i] end
local xb = T.cat(xs, 1)
dist.sync_batchnorm(a.sync_bn)
local loss = F.cross_entropy(model(xb), T.new(ys), { weight = weight, label_smoothing = 0.1 })
local lv = loss:item()
if size > 1 then
  local d = parallel.denominator(ys, weight)
  local scaled = loss * d
  scaled:backward()
  lv = parallel.new(params, a.compress):reduce(d, lv, #ys, 0, false)
else
  loss:backward()
end
dist.sync_batchnorm(false)
local flat = T.zeros(optim_c.grads_numel(params))
optim_c.pack_grads(params, flat)
if dist.is_root() then
  local out = { grad = flat, loss = T.new({ lv }) }
  for k, t in pairs(model:state_dict()) do
    if k:match("running_") then out[k] = t end
  end
  assert(ser.save(a.out, out, { processes = tostring(size) }))
end
