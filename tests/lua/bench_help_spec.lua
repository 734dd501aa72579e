-- Every benchmark a user runs answers --help with what it measures and how it is called,
-- and does not start measuring. (The bench/*.py files are the PyTorch sides the shell
-- scripts call, not entry points.)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local paths = dofile(here .. "helpers/paths.lua")
local shell = dofile(here .. "helpers/shell.lua")
local serlua = paths.serlua
local it_bin = paths.have_serlua and it or pending

local function scripts(ext)
  local list = {}
  local p = assert(io.popen("ls bench/*." .. ext))
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  assert.is_true(#list > 0, "no bench/*." .. ext)
  return list
end

describe("bench scripts", function()
  it_bin("each serlua bench answers --help with its usage", function()
    for _, f in ipairs(scripts("lua")) do
      local out, rc = shell.run(("timeout 30 %s %s --help"):format(serlua, f))
      assert.are.equal(0, rc, f .. ": " .. out)
      assert.matches("[Uu]sage", out, 1, false, f)
      assert.is_nil(out:find("RESULT", 1, true), f .. " measured instead of answering --help")
    end
  end)

  it_bin("each shell bench answers --help with its header", function()
    for _, f in ipairs(scripts("sh")) do
      local out, rc = shell.run(("BUILD=%s timeout 30 bash %s --help"):format(paths.build, f))
      assert.are.equal(0, rc, f .. ": " .. out)
      assert.is_true(#out > 40, f .. " printed no help")
      assert.is_nil(out:find("RESULT", 1, true), f .. " measured instead of answering --help")
    end
  end)
end)
