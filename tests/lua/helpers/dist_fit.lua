-- Trains one model for a few epochs on a small synthetic corpus and writes its final
-- weights, for tests/lua/dist_spec.lua: run as one process with batch N*b and under
-- `mpirun -n N` with batch b, the two files must hold the same weights.
--   serlua dist_fit.lua --model crnn|cnn2d --batch B --out FILE [--epochs E] [--sync-bn]
--     [--compress bf16|fp16] [--clips N] [--checkpoint FILE]
--     [--fail RANK:CALL | --die RANK:CALL]   rank RANK raises an error / kills itself (SIGKILL)
--                                            at its CALL-th training forward (fault tests)
--     [--state FILE [--resume]] [--no-val] [--dropout] [--augment reference] [--ema DECAY]
--                                            the training state and resume (resume_spec / dist_spec);
--                                            dropout kept, augmentation and EMA: what a resume restores
local ser = require "ser"
local argparse = require "argparse"

local p = argparse("dist_fit.lua", "One small training run; writes the final weights (see dist_spec.lua).")
p:option("--model", "crnn or cnn2d.", "crnn")
p:option("--batch", "Batch per process.", "4"):convert(tonumber)
p:option("--epochs", "Epochs.", "1"):convert(tonumber)
p:option("--out", "Where the weights go (rank 0 writes).")
p:option("--compress", "Gradient compression: none, bf16, fp16.", "none")
p:option("--clips", "Clips per class and speaker.", "3"):convert(tonumber)
p:flag("--sync-bn", "Synchronised BatchNorm.")
p:option("--checkpoint", "fit's checkpoint file (written by rank 0 at every better validation score).")
p:option("--fail", "RANK:CALL: that rank raises an error at its CALL-th training forward.")
p:option("--die", "RANK:CALL: that rank kills itself with SIGKILL at its CALL-th training forward.")
p:option("--state", "fit's training-state file (written by rank 0 after every epoch).")
p:flag("--resume", "Continue from --state.")
p:flag("--no-val", "Train without the validation split: the final weights are then the last (or EMA) ones.")
p:flag("--dropout", "Keep the models' dropout (each process draws its own masks).")
p:option("--augment", "fit's augment option.", "none")
p:option("--ema", "Weight EMA decay (0: none).", "0"):convert(tonumber)
local a = p:parse(arg)

ser.manual_seed(7)
-- 4 classes x 3 speakers x 3 clips = 36 clips of 0.5 s; speakers 1-2 train, 3 validates
local corpus = ser.data.synthetic{ speakers = 3, per_class = a.clips, classes = 4, seconds = 0.5, seed = 5 }
local train, val = corpus:split{ by = "speaker", train = { 1, 2 }, val = { 3, 3 }, quiet = true }
local model = ser.models.create(a.model, { classes = #corpus.classes })
-- no dropout: its masks are drawn per process, so N processes cannot match one
if not a.dropout then model:apply(function(m) if m.__name == "Dropout" then m.p = 0 end end) end
-- Fault injection: counts this process's training forwards.
local fault = a.fail and "fail" or a.die and "die" or nil
if fault then
  local r, call = (a.fail or a.die):match("^(%d+):(%d+)$")
  local rank = ser.dist.init()
  if tonumber(r) == rank then
    dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "fault_at_forward.lua").arm(model, tonumber(call), fault)
  end
end
local fitted, history = ser.train.fit(model, { train, not a.no_val and val or nil }, { epochs = a.epochs, batch = a.batch, seed = 3,
  augment = a.augment, seconds = 0.5, progress = "quiet", sync_bn = a.sync_bn, grad_compression = a.compress,
  patience = 100, checkpoint = a.checkpoint, state = a.state, resume = a.resume, ema = a.ema > 0 and a.ema or false })
if ser.dist.is_root() then
  assert(ser.save(a.out, fitted:state_dict(), { loss = tostring(history[#history].train_loss),
    processes = tostring(ser.dist.size()) }))
  print(("trained %s on %d process(es): train loss %.6f"):format(a.model, ser.dist.size(), history[#history].train_loss))
end
