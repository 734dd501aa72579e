-- distill.from: a recipe of the main job taught by another recipe of the same job (its
-- model of the same seed, trained first): the order compare.lua trains them in, the teacher
-- the student's checkpoint records, the note when the teacher is not in the job, and the
-- refusals before any training.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local ser = require "ser"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local job = dofile(here .. "helpers/quick_job.lua")
local it_bin = job.built and it or pending

-- Writes a recipe file holding the Lua table text body; returns its path.
local function recipe_file(dir, name, body)
  local path = ("%s/%s.lua"):format(dir, name)
  local f = assert(io.open(path, "w"))
  f:write("return " .. body .. "\n")
  f:close()
  return path
end

describe("compare.lua with distill.from", function()
  local dir, corpus, student, teacher
  setup(function()
    dir = tmp.make("distillfrom")
    corpus = job.corpus(dir .. "/corpus")
    student = recipe_file(dir, "student", '{ model = { name = "cnn1d" }, distill = { from = "teach", alpha = 0.7 } }')
    teacher = recipe_file(dir, "teach", '{ name = "teach", model = { name = "cnn2d" } }')
  end)
  teardown(tmp.cleanup)

  it_bin("trains the teacher first and distils the student from its checkpoint of the same seed", function()
    local out_dir = dir .. "/both"
    -- the student is given first: the job reorders
    local out, rc = job.compare(("--data %s --out %s --seed 3 --recipe %s --recipe %s")
      :format(corpus, out_dir, student, teacher))
    assert.are.equal(0, rc, out)
    local teach_at = out:find("== training teach, seed 3", 1, true)
    local distil_at = out:find("distilling from 1 teacher(s), alpha 0.7", 1, true)
    assert.is_truthy(distil_at, out)
    assert.is_truthy(teach_at and teach_at < distil_at, "the teacher was not trained before the student:\n" .. out)
    local _, meta = assert(ser.load(out_dir .. "/results/cnn1d.safetensors"))
    assert.are.same({ out_dir .. "/results/teach.safetensors" }, meta.distill.teachers)
    assert.are.equal(0.7, meta.distill.alpha)
    assert.are.equal("teach", meta.recipe.distill.from)
    for _, model in ipairs { "teach", "cnn1d" } do assert.is_truthy(job.csv_row(out_dir .. "/results/results.csv", model, "val"), model) end
  end)

  it_bin("without its teacher in the job, says so and trains the student undistilled", function()
    local out_dir = dir .. "/alone"
    local out, rc = job.compare(("--data %s --out %s --recipe %s --recipe %s --models cnn1d")
      :format(corpus, out_dir, student, teacher))
    assert.are.equal(0, rc, out)
    assert.matches("note: not distilling cnn1d from teach: teach is not trained in this job", out, 1, true)
    assert.is_nil(out:find("distilling from", 1, true), out)
    local _, meta = assert(ser.load(out_dir .. "/results/cnn1d.safetensors"))
    assert.is_nil(meta.distill)
    assert.is_nil(meta.recipe.distill)
  end)

  it_bin("refuses a recipe teaching itself, a circle, --folds and a seed the teacher lacks, before training", function()
    local self_taught = recipe_file(dir, "self", '{ name = "self", model = { name = "cnn2d" }, distill = { from = "self" } }')
    local a = recipe_file(dir, "a", '{ name = "a", model = { name = "cnn2d" }, distill = { from = "b" } }')
    local b = recipe_file(dir, "b", '{ name = "b", model = { name = "crnn" }, distill = { from = "a" } }')
    local seeds = recipe_file(dir, "seeds", '{ model = { name = "cnn1d" }, seeds = { 1, 2 }, distill = { from = "teach" } }')
    local one = recipe_file(dir, "one", '{ name = "teach", model = { name = "cnn2d" }, seeds = { 1 } }')
    for _, c in ipairs {
      { "--recipe " .. self_taught, "recipe self: distill.from names the recipe itself" },
      { ("--recipe %s --recipe %s"):format(a, b), "recipes: distill.from goes round in a circle through" },
      { ("--recipe %s --recipe %s --folds 2"):format(student, teacher), "recipe cnn1d: distill.from cannot be combined with --folds" },
      { ("--recipe %s --recipe %s"):format(seeds, one),
        "recipe cnn1d: distill.from teach, which has no run of seed 2 (its seeds: 1); give both the same seeds" },
      { ("--recipe %s --set distill.alpha=0.3"):format(teacher), "distill.alpha set without distill.teachers" },
    } do
      local out, rc = job.compare(("--data %s --out %s/refused %s"):format(corpus, dir, c[1]))
      job.assert_refused(out, rc, c[2], c[1])
    end
  end)
end)
