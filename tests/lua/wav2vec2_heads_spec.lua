-- Heads on frozen wav2vec 2.0 / HuBERT / WavLM encoders end to end: for a small random encoder of
-- each family (the committed fixtures of wav2vec2_spec.lua), compare.lua --quick trains the
-- frozen-encoder family (model name `whisper`, named for its first encoder) through the embedding
-- cache, and predict.lua reproduces its validation scores from the checkpoint alone. A random
-- encoder cannot learn emotion: this shows the path works, not a score.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local cachemod = require "ser.data.embedding_cache"
local fixtures = here .. "../data/wav2vec2/"
local serlua = (os.getenv("SER_TEST_BUILD") or "build") .. "/serlua"
local have = io.open(serlua, "rb")
if have then have:close() end
local it_bin = have and it or pending

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

local function csv_row(path, model, split)
  for line in io.lines(path) do
    local f = {}
    for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    if f[1] == model and f[2] == split then return f end
  end
end

describe("heads on frozen wav2vec2-family encoders in the main job", function()
  local dir, corpus
  setup(function()
    dir = tmp.make("w2vjob")
    corpus = dir .. "/corpus"
    ser.data.synthetic { speakers = 24, per_class = 1, seconds = 1.0, seed = 5, out = corpus,
                         classes = { "neutral", "happy", "angry" } }
  end)
  teardown(tmp.cleanup)

  for _, case in ipairs { { v = "w2v_group", sets = "" }, { v = "hubert_group_f16", sets = " --head superb" },
                          { v = "wavlm_layer_pre", sets = " --head concat --speaker-norm" } } do
    it_bin(("%s: compare.lua --quick trains a head%s; predict.lua reproduces its scores"):format(case.v, case.sets), function()
      local enc_dir = fixtures .. case.v
      local family = assert(ser.pretrained.load(enc_dir)).config.family
      local out_dir = dir .. "/" .. case.v
      local out, rc = run(("%s experiments/compare.lua --quick --models whisper --data %s --out %s --seed 1 --encoder %s%s")
        :format(serlua, corpus, out_dir, enc_dir, case.sets))
      assert.are.equal(0, rc, out)
      assert.matches("2 layers x d 32", out)
      local ckpt = out_dir .. "/results/whisper.safetensors"
      local sd, meta = assert(ser.load(ckpt))
      assert.are.equal(assert(cachemod.identity(enc_dir)).sha256, meta.encoder.sha256)
      for k in pairs(sd) do assert.is_nil(k:match("encoder"), "encoder weights in the checkpoint: " .. k) end
      local want = csv_row(out_dir .. "/results/results.csv", "whisper", "val")
      assert.is_truthy(want, out)
      local _, val = ser.data.scan(corpus, { quiet = true }):split { by = "speaker", quiet = true }
      local paths = {}
      for i, item in ipairs(val.items) do paths[i] = item.path end
      local pout, prc = run(("%s experiments/predict.lua %s %s"):format(serlua, ckpt, table.concat(paths, " ")))
      assert.are.equal(0, prc, pout)
      local labels = {}
      for path, label in pout:gmatch("([^\t\n]+)\t([^\t\n]+)\t[^\n]*") do labels[path] = label end
      local index, pred, target = {}, {}, {}
      for i, c in ipairs(val.classes) do index[c] = i end
      for i, item in ipairs(val.items) do
        assert.is_truthy(labels[item.path], pout)
        pred[i], target[i] = index[labels[item.path]], index[item.label]
      end
      local rep = ser.metrics.report(pred, target, val.classes)
      assert.are.equal(want[3], ("%.4f"):format(rep.accuracy))
      assert.are.equal(want[4], ("%.4f"):format(rep.weighted_f1))
      print(("  %s (%s): val accuracy %s from compare.lua and from predict.lua"):format(case.v, family, want[3]))
    end)
  end
end)
