-- Seconds per training epoch of one model, for bench/bench_dist.sh: run alone or under
-- `mpirun -n N` (then --batch is per process). Prints one line (rank 0):
--   RESULT model=<m> procs=<N> threads=<T> batch=<b> steps=<s> epoch_s=<t> comm_s=<c> params=<n>
-- for the last of --epochs epochs (the first also computes the cached features).
--   serlua bench/dist_epoch.lua --model crnn --batch 8 [--data DIR] [--per K] [--epochs 2] [--sync-bn]
local ser = require "ser"
local argparse = require "argparse"

local p = argparse("dist_epoch.lua", "Seconds per training epoch, alone or under mpirun.")
p:option("--model", "cnn2d, crnn or cnn1d.", "crnn")
p:option("--batch", "Batch per process.", "8"):convert(tonumber)
p:option("--data", "Corpus folder (RAVDESS names); default: a synthetic corpus.")
p:option("--per", "Clips per speaker and class of actors 1-16 (the first K in path order).", "2"):convert(tonumber)
p:option("--epochs", "Epochs; the last one is reported.", "2"):convert(tonumber)
p:flag("--sync-bn", "Synchronised BatchNorm.")
local a = p:parse(arg)

local rank, size = ser.dist.init()
ser.manual_seed(1)
local corpus = a.data and assert(ser.data.scan(a.data, { quiet = true }))
  or ser.data.synthetic{ speakers = 16, per_class = 2, seconds = 4.0, seed = 1 }
local train = corpus:split{ by = "speaker", train = { 1, 16 }, val = { 17, 20 }, test = { 21, 24 }, quiet = true }
train = train:sample{ per_speaker_class = a.per }
local model = ser.models.create(a.model, { classes = #corpus.classes })
local _, history = ser.train.fit(model, { train }, { epochs = a.epochs, batch = a.batch, augment = "none",
  progress = "quiet", seed = 1, sync_bn = a.sync_bn })
local last = history[#history]
local n = 0
for _, t in ipairs(model:parameters()) do n = n + t:numel() end
if rank == 0 then
  print(("RESULT model=%s procs=%d threads=%d batch=%d steps=%d epoch_s=%.3f comm_s=%.3f params=%d"):format(a.model,
    size, ser.num_threads(), a.batch, math.ceil(#train.items / (a.batch * size)),
    last.seconds, last.comm_seconds or 0, n))
end
