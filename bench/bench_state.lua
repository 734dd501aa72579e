-- The cost of ser.train.fit's per-epoch training state (ser.train.state, docs/train.md
-- "Resuming"): for CNN2D, CRNN and CNN1D (the default recipes' models, 8 classes) with AdamW
-- moments after one step, a weight EMA and the best epoch's weights kept (the largest state a
-- run writes), the median time of one write (safetensors through a temporary file and rename)
-- and of one read-and-check, and the file's size. A state is written once per epoch, so set
-- these against the epoch times of docs/engine.md.
--   serlua bench/bench_state.lua [--repeats R] [--dir FOLDER]
local ser = require "ser"
local argparse = require "argparse"
local state = require "ser.train.state"
local clock = require("ser.core.nn_cnn").monotonic
local T = ser.tensor

local p = argparse("bench_state.lua", "Time the per-epoch training-state write of ser.train.fit.")
p:option("--repeats", "Writes (and reads) timed per model; the median is printed.", "15"):convert(tonumber)
p:option("--dir", "Folder for the state files (removed after).", "/tmp")
local a = p:parse(arg)

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

print(("threads %d; %s"):format(ser.num_threads(), ser.blas_info and ser.blas_info() or ""))
print(("%-6s %10s %10s %12s %12s"):format("model", "params", "file MB", "write ms", "read ms"))
for _, name in ipairs { "cnn2d", "crnn", "cnn1d" } do
  ser.manual_seed(1)
  local model = ser.models.create(name, { classes = 8 })
  local params = model:parameters()
  local n = 0
  for _, t in ipairs(params) do n = n + t:numel() end
  local opt = ser.optim.AdamW(params, { lr = 1e-3, weight_decay = 1e-4 })
  for _, t in ipairs(params) do t:set_grad(T.randn(table.unpack(t:shape()))) end
  opt:step()   -- the moments exist from the first step on
  local sched = ser.optim.OneCycleLR(opt, { max_lr = 1e-3, total_steps = 100 })
  local ema = ser.optim.EMA(model, { decay = 0.99 })
  ema:update()
  local best = { f1 = 0.5, epoch = 3, state = {} }
  for k, t in pairs(model:state_dict()) do best.state[k] = t:clone() end
  local history = {}
  for e = 1, 35 do
    history[e] = { epoch = e, train_loss = 1.5, train_acc = 0.4, train_f1 = 0.4, lr = 1e-4, val_loss = 1.6,
                   val_acc = 0.4, val_f1 = 0.4, seconds = 12.5 }
  end
  local path = ("%s/bench_state_%s.safetensors"):format(a.dir, name)
  local identity = state.identity({ seed = 1, epochs = 35 }, model, {}, 1)
  local s = { identity = identity, epoch = 35, model = model, opt = opt, sched = sched, ema = ema, best = best,
              since_best = 2, history = history, rng = { ser.get_rng_state() }, seconds = { train = 1, cpu = 1 } }
  local writes, reads = {}, {}
  for r = 1, a.repeats do
    local t0 = clock()
    state.write(path, s)
    writes[r] = (clock() - t0) * 1000
    t0 = clock()
    assert(state.read(path, identity))
    reads[r] = (clock() - t0) * 1000
  end
  local f = assert(io.open(path, "rb"))
  local bytes = f:seek("end")
  f:close()
  os.remove(path)
  print(("%-6s %10d %10.2f %12.1f %12.1f"):format(name, n, bytes / 1e6, median(writes), median(reads)))
end
