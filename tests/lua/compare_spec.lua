-- experiments/compare.lua, predict.lua, embed.lua: generated --help and flag
-- validation that fails before any training starts (the full run is
-- scripts/smoke.sh). The scripts run under the serlua of the build.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local paths = dofile(here .. "helpers/paths.lua")
local job = dofile(here .. "helpers/quick_job.lua")
local serlua = paths.serlua

-- serlua ARGS: its output and exit status
local function run(args)
  return job.run(("%s %s"):format(serlua, args))
end

-- The script exits non-zero and says `text`.
local function refuses(args, text)
  local out, rc = run(args)
  assert.are_not.equal(0, rc, args)
  assert.matches(text, out, 1, true)
end

local have = paths.have_serlua
local it_bin = have and it or pending

describe("experiments/compare.lua", function()
  it_bin("prints generated help with every flag", function()
    local out, rc = run("experiments/compare.lua --help")
    assert.are.equal(0, rc)
    for _, flag in ipairs { "--data", "--out", "--epochs", "--batch", "--seconds", "--lr", "--models", "--amp",
                            "--seed", "--seeds", "--folds", "--quick", "--patience", "--trim", "--mixup", "--ema",
                            "--norm", "--ensemble", "--weight-decay", "--crnn-batchnorm", "--crnn-dropout",
                            "--crnn-feature-dropout", "--crnn-hidden", "--mels", "--freq", "--crnn-time", "--distill",
                            "--distill-alpha", "--distill-temperature", "--distill-consistent", "--recipe", "--set" } do
      assert.matches(flag, out, 1, true)
    end
    assert.matches("results.csv", out, 1, true)
  end)

  it_bin("rejects bad flags with a message and no training", function()
    local cases = {   -- the flags set recipe fields: messages name the field, the allowed values and the flag
      { "--models cnn2d,resnet", "--models: unknown model 'resnet' (expected cnn2d, crnn, cnn1d, whisper)" },
      { "--epochs 0", "epochs must be a whole number >= 1, got 0 (from --epochs 0)" },
      { "--batch 2.5", "batch must be a whole number >= 1, got 2.5 (from --batch 2.5)" },
      { "--seconds=-1", "data.seconds must be a number > 0, got -1 (from --seconds -1)" },
      { "--lr abc", "optim.lr must be a number > 0, got \"abc\" (from --lr abc)" },
      { "--folds 1", "--folds must be a whole number >= 2" },
      { "--seeds 1,x", "seeds must be a non-empty list of whole numbers, got {1, x} (from --seeds 1,x)" },
      { "--seeds 1.5", "seeds must be a non-empty list of whole numbers, got {1.5}" },
      { "--trim=-3", "data.trim must be a number of dB > 0 (or 0 for no trimming), got -3" },
      { "--mixup=-0.2", "mixup must be a number >= 0, got -0.2" },
      { "--ema 1", "ema must be a decay in [0, 1) (0 = off), got 1" },
      { "--norm bin", "data.normalize must be one of \"clip\", \"speaker\", \"speaker_bins\", got \"bin\"" },
      { "--weight-decay=-1", "optim.weight_decay must be a number >= 0, got -1" },
      { "--crnn-dropout 1", "recipes/crnn.lua: model.dropout must be a probability in [0, 1), got 1 (from --crnn-dropout 1)" },
      { "--crnn-feature-dropout=-0.1", "model.feature_dropout must be a probability in [0, 1), got -0.1" },
      { "--crnn-hidden 0", "model.hidden must be a whole number >= 1, got 0" },
      { "--crnn-hidden 12.5", "model.hidden must be a whole number >= 1, got 12.5" },
      { "--mels 12", "features.n_mels must be a whole number >= 8, a multiple of 8 with model.freq = \"flatten\", got 12" },
      { "--mels 4 --freq mean", "features.n_mels must be a whole number >= 8" },
      { "--mels 256", "features.n_mels must be a number of bands the FFT bins can carry (features.melbank: melbank: 1 of 256 mel filters cover no FFT bin" },
      { "--mels 0", "features.n_mels must be a whole number >= 1, got 0" },
      { "--data /nonexistent/corpus", "is not a folder" },
      { "--data lua/ser/nn", "--data lua/ser/nn: scan: no labelled audio files under 'lua/ser/nn'" },
      { "--out /proc/serlua-cannot-write", "cannot be created" },
      { "--distill-alpha 2", "distill.alpha must be a number in [0, 1], got 2" },
      { "--distill-temperature 0", "distill.temperature must be a number > 0, got 0" },
      { "--quick --distill /nonexistent/teacher.safetensors", "distill.teachers: teacher 1: cannot open '/nonexistent/teacher.safetensors'" },
      { "--quick --distill-consistent", "distill.consistent set without distill.teachers" },
      { "--quick --distill a.safetensors --mixup 0.2",
        "distillation and mixup cannot be combined unless distill.consistent = true" },
      { "--set optim.lr", "--set optim.lr: expected key=value with a dotted recipe field" },
      { "--set optim.lrr=1", "--set optim.lrr=1: optim.lrr names no recipe field; the fields are amp, augment," },
      { "--set epochs=0", "epochs must be a whole number >= 1, got 0 (from --set epochs=0)" },
      { "--set model.time=max", "model.time must be one of \"mean\", \"stats\", got \"max\" (from --set model.time=max)" },
      { "--recipe /nonexistent/recipe.lua", "recipe /nonexistent/recipe.lua: cannot open /nonexistent/recipe.lua" },
      { "--recipe experiments/recipes/crnn_best.lua --recipe experiments/recipes/crnn_fd.lua",
        "recipes experiments/recipes/crnn_best.lua and experiments/recipes/crnn_fd.lua are both named 'crnn'" },
    }
    for _, c in ipairs(cases) do
      local out, rc = run("experiments/compare.lua " .. c[1])
      job.assert_refused(out, rc, c[2], c[1])
    end
  end)
end)

describe("experiments/compare.lua --distill", function()
  local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")
  after_each(tmp.cleanup)

  it_bin("refuses teachers of other classes, trained on a held-out speaker or (consistent) on other inputs, "
    .. "before any training", function()
    local ser = require "ser"
    local dir = tmp.make("compare")
    local classes = ser.data.synthetic{ speakers = 2, per_class = 1, seconds = 0.25 }.classes
    local leaky, other = dir .. "/leaky.safetensors", dir .. "/other.safetensors"
    local model = ser.models.create("cnn2d", { classes = #classes })
    ser.train.save_checkpoint(leaky, model, classes, { name = "cnn2d" }, 1, { train_speakers = { 1, 2, 17 } })
    ser.train.save_checkpoint(other, ser.models.create("cnn2d", { classes = 2 }), { "x", "y" }, { name = "cnn2d" }, 1)
    -- trained on the training speakers, on 4 s clips: --quick's 1 s clips are other inputs
    local clean = dir .. "/clean.safetensors"
    ser.train.save_checkpoint(clean, model, classes, { name = "cnn2d" }, 1, { train_speakers = { 1, 2 } })
    for _, c in ipairs {
      { leaky, "distill.teachers: teacher " .. leaky .. " was trained on speaker(s) 17, which this run evaluates on" },
      { other, "distill.teachers: teacher " .. other .. " was trained on the classes {x, y}" },
      { clean .. " --distill-consistent", "distill.teachers: consistent teaching shows teacher " .. clean
        .. " the student's training batches, but seconds is 4 for the teacher and 1 for the student" },
      { clean .. " --mixup 0.2", "distillation and mixup cannot be combined unless distill.consistent = true" },
    } do
      local out, rc = run(("experiments/compare.lua --quick --out %s --distill %s"):format(dir, c[1]))
      job.assert_refused(out, rc, c[2], c[1])
    end
  end)
end)

describe("experiments/predict.lua and embed.lua", function()
  it_bin("report a checkpoint that does not load", function()
    refuses("experiments/predict.lua /nonexistent.safetensors a.wav", "nonexistent.safetensors")
    refuses("experiments/embed.lua /nonexistent.safetensors .", "nonexistent.safetensors")
  end)

  it_bin("need their arguments", function()
    refuses("experiments/predict.lua", "Usage")
  end)
end)

describe("experiments/ensemble.lua", function()
  it_bin("prints generated help", function()
    local out, rc = run("experiments/ensemble.lua --help")
    assert.are.equal(0, rc)
    for _, flag in ipairs { "--data", "--split", "--out", "checkpoints" } do assert.matches(flag, out, 1, true) end
  end)

  it_bin("needs two checkpoints that load, and a corpus folder", function()
    refuses("experiments/ensemble.lua a.safetensors", "requires at least 2 arguments")
    refuses("experiments/ensemble.lua --data /nonexistent/corpus a.safetensors b.safetensors",
      "--data /nonexistent/corpus is not a folder")
    refuses("experiments/ensemble.lua --data . /nonexistent.safetensors b.safetensors", "nonexistent.safetensors")
    refuses("experiments/ensemble.lua --split train --data . a.safetensors b.safetensors", "--split")
  end)
end)
