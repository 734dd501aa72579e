-- The end-to-end set-up the main-job specs share (recipes_run, whisper_heads, whisper_frames,
-- wav2vec2_heads): a small written corpus, `compare.lua --quick` on it, then predict.lua given
-- only the checkpoint, scoring the validation clips as compare.lua's results.csv says it did.
-- Load with dofile(here .. "helpers/quick_job.lua").
local ser = require "ser"
local assert = require "luassert"

local helpers = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local paths = dofile(helpers .. "paths.lua")
local shell = dofile(helpers .. "shell.lua")

local M = {}

-- The serlua binary under test; M.built is false when it is not built (specs mark their
-- end-to-end cases pending then).
M.serlua, M.built = paths.serlua, paths.have_serlua

-- Runs a shell command; its output (stdout and stderr) and exit status (helpers/shell.lua).
M.run = shell.run

-- serlua experiments/<script> args...
function M.experiment(script, args)
  return M.run(("%s experiments/%s %s"):format(M.serlua, script, args))
end

-- `compare.lua --quick ARGS` (its output and exit status).
function M.compare(args)
  return M.experiment("compare.lua", "--quick " .. args)
end

-- A run that must have been refused before any training: a non-zero status, the message
-- text in its output, and no epoch line. what: the case, named in failures.
function M.assert_refused(out, rc, text, what)
  assert.are_not.equal(0, rc, what)
  assert.matches(text, out, 1, true)
  assert.is_nil(out:find("epoch ", 1, true), what .. " started training")
end

-- The fields of the row of a results.csv for model and split, nil when there is none.
function M.csv_row(path, model, split)
  for line in io.lines(path) do
    local f = {}
    for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    if f[1] == model and f[2] == split then return f end
  end
end

-- Writes the corpus the end-to-end runs train on at path: all 24 speakers (the default split
-- takes 1-16, 17-20, 21-24) and three classes, one 1 s clip each, so a --quick run takes
-- seconds.
function M.corpus(path)
  ser.data.synthetic { speakers = 24, per_class = 1, seconds = 1.0, seed = 5, out = path,
                       classes = { "neutral", "happy", "angry" } }
  return path
end

-- The speaker ids first..last, as a checkpoint records its training speakers.
function M.speakers(first, last)
  local list = {}
  for s = first, last do list[#list + 1] = s end
  return list
end

-- The validation part of corpus under the default split, and its clips' paths.
function M.val(corpus)
  local _, val = ser.data.scan(corpus, { quiet = true }):split { by = "speaker", quiet = true }
  local paths = {}
  for i, item in ipairs(val.items) do paths[i] = item.path end
  return val, paths
end

-- predict.lua's label per file (path -> label), its output and exit status.
function M.predict(ckpt, paths)
  local out, rc = M.experiment("predict.lua", ckpt .. " " .. table.concat(paths, " "))
  local labels = {}
  for path, label in out:gmatch("([^\t\n]+)\t([^\t\n]+)\t[^\n]*") do labels[path] = label end
  return labels, out, rc
end

-- predict.lua, given only ckpt, labels corpus's validation clips with the accuracy and weighted
-- F1 (to the 4 places results.csv keeps) of the `model,val` row of results_csv. Returns that
-- row and predict.lua's labels.
function M.assert_reproduces(ckpt, corpus, results_csv, model)
  local want = M.csv_row(results_csv, model, "val")
  assert.is_truthy(want, "no " .. model .. " val row in " .. results_csv)
  local val, paths = M.val(corpus)
  local labels, out, rc = M.predict(ckpt, paths)
  assert.are.equal(0, rc, out)
  local index, pred, target = {}, {}, {}
  for i, c in ipairs(val.classes) do index[c] = i end
  for i, item in ipairs(val.items) do
    assert.is_truthy(labels[item.path], "no prediction for " .. item.path .. "\n" .. out)
    pred[i], target[i] = index[labels[item.path]], index[item.label]
  end
  local rep = ser.metrics.report(pred, target, val.classes)
  assert.are.equal(want[3], ("%.4f"):format(rep.accuracy), "accuracy")
  assert.are.equal(want[4], ("%.4f"):format(rep.weighted_f1), "weighted F1")
  return want, labels
end

return M
