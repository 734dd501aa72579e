-- What statistics pooling over time (model.time = "stats") costs a training step against the
-- mean alone, ours against ours (the same model with one option changed; PyTorch has no part
-- in it): CNN2D or CNN1D as the default recipes build them, batch 8 of 4 s clips, forward,
-- cross-entropy and backward, the two variants interleaved round by round so that a machine's
-- drift falls on both. Prints CPU seconds per step (one thread: the work itself) and the ratio.
--
--   serlua bench/pooling_cost.lua [--model cnn2d|cnn1d] [--rounds 6] [--steps 5] [--threads 1]
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional

local argparse = require "argparse"
local parser = argparse("pooling_cost.lua", "CPU time of a training step with statistics pooling over time "
  .. "against mean pooling (CNN2D or CNN1D, batch 8 x 4 s)")
parser:option("--model", "cnn2d or cnn1d", "cnn2d"):choices { "cnn2d", "cnn1d" }
parser:option("--rounds", "interleaved rounds (the first is warm-up)", "6"):convert(tonumber)
parser:option("--steps", "steps per variant and round", "5"):convert(tonumber)
parser:option("--threads", "threads", "1"):convert(tonumber)
local args = parser:parse()
if not (args.rounds and args.rounds >= 2 and args.steps and args.steps >= 1 and args.threads and args.threads >= 1) then
  parser:error("--rounds must be >= 2, --steps and --threads >= 1")
end
ser.set_num_threads(args.threads)

ser.manual_seed(1)
local x = args.model == "cnn2d" and T.randn{ 8, 1, 64, 401 } or T.randn{ 8, 1, 64000 }
local y = T.new{ 1, 2, 3, 4, 5, 6, 7, 8 }
local base = args.model == "cnn2d" and { classes = 8, freq = "flatten" } or { classes = 8 }
local variants = {}
for _, time in ipairs { "mean", "stats" } do
  local o = { time = time }
  for k, v in pairs(base) do o[k] = v end
  variants[#variants + 1] = { name = time, model = ser.models.create(args.model, o), cpu = 0 }
end

for round = 1, args.rounds do
  for _, v in ipairs(variants) do
    local t0 = os.clock()
    for _ = 1, args.steps do
      v.model:zero_grad()
      F.cross_entropy(v.model(x), y):backward()
    end
    if round > 1 then v.cpu = v.cpu + os.clock() - t0 end
  end
end
local n = (args.rounds - 1) * args.steps
local mean, stats = variants[1].cpu / n, variants[2].cpu / n
print(("%s, %d thread(s), %d steps each: mean pooling %.4f CPU-s per step, mean + std %.4f; stats / mean %.3f")
  :format(args.model, args.threads, n, mean, stats, stats / mean))
