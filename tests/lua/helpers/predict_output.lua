-- Runs experiments/predict.lua on files and compares its probabilities with what fit
-- reported for the same clips (shared by the specs that check a checkpoint reproduces
-- training's features: speaker normalisation, recorded feature options).
local T = require("ser").tensor

local paths = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")

local M = {}

-- The serlua binary under test (SER_TEST_BUILD or build/), nil when it is not built:
-- specs then mark these checks pending.
if paths.have_serlua then M.serlua = paths.serlua end

-- { [path] = {p1, p2, ...} } from predict.lua's "path<TAB>label<TAB>name p  name p ..." lines,
-- and the whole output (for messages).
function M.run(checkpoint, paths)
  local p = io.popen(("%s experiments/predict.lua %s %s 2>&1"):format(M.serlua, checkpoint, table.concat(paths, " ")))
  local out = p:read("a")
  p:close()
  local probs = {}
  for line in out:gmatch("[^\n]+") do
    local path, rest = line:match("^(%S+)\t%S+\t(.*)$")
    if path then
      local v = {}
      for num in rest:gmatch("%s(%d%.%d+)") do v[#v + 1] = tonumber(num) end
      probs[path] = v
    end
  end
  return probs, out
end

-- predict.lua's probabilities for paths[i] equal softmax(logits[i]) to printing precision.
function M.assert_matches(checkpoint, paths, logits)
  local probs, out = M.run(checkpoint, paths)
  for i, path in ipairs(paths) do
    assert(probs[path], "predict.lua reported no line for " .. path .. "\n" .. out)
    local sm = T.new(logits[i]):softmax(1):totable()
    for k = 1, #sm do
      assert(math.abs(sm[k] - probs[path][k]) < 2e-3,
        ("%s class %d: predict %g, fit %g"):format(path, k, probs[path][k], sm[k]))
    end
  end
end

return M
