-- Heads on frozen wav2vec 2.0 / HuBERT / WavLM encoders end to end: for a small random encoder of
-- each family (the committed fixtures of wav2vec2_spec.lua), compare.lua --quick trains the
-- frozen-encoder family (model name `whisper`, named for its first encoder) through the embedding
-- cache, and predict.lua reproduces its validation scores from the checkpoint alone. A random
-- encoder cannot learn emotion: this shows the path works, not a score.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local job = dofile(here .. "helpers/quick_job.lua")
local cachemod = require "ser.data.embedding_cache"
local fixtures = here .. "../data/wav2vec2/"
local it_bin = job.built and it or pending

describe("heads on frozen wav2vec2-family encoders in the main job", function()
  local dir, corpus
  setup(function()
    dir = tmp.make("w2vjob")
    corpus = job.corpus(dir .. "/corpus")
  end)
  teardown(tmp.cleanup)

  for _, case in ipairs { { v = "w2v_group", sets = "" }, { v = "hubert_group_f16", sets = " --head superb" },
                          { v = "wavlm_layer_pre", sets = " --head concat --speaker-norm" } } do
    it_bin(("%s: compare.lua --quick trains a head%s; predict.lua reproduces its scores"):format(case.v, case.sets), function()
      local enc_dir = fixtures .. case.v
      local family = assert(ser.pretrained.load(enc_dir)).config.family
      local out_dir = dir .. "/" .. case.v
      local out, rc = job.compare(("--models whisper --data %s --out %s --seed 1 --encoder %s%s")
        :format(corpus, out_dir, enc_dir, case.sets))
      assert.are.equal(0, rc, out)
      assert.matches("2 layers x d 32", out)
      local ckpt = out_dir .. "/results/whisper.safetensors"
      local sd, meta = assert(ser.load(ckpt))
      assert.are.equal(assert(cachemod.identity(enc_dir)).sha256, meta.encoder.sha256)
      for k in pairs(sd) do assert.is_nil(k:match("encoder"), "encoder weights in the checkpoint: " .. k) end
      local want = job.assert_reproduces(ckpt, corpus, out_dir .. "/results/results.csv", "whisper")
      print(("  %s (%s): val accuracy %s from compare.lua and from predict.lua"):format(case.v, family, want[3]))
    end)
  end
end)
