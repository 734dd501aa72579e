-- Runs a script (compare.lua) in this process and kills the process with SIGKILL at the N-th
-- training forward of the first model built for the recipe named NAME: a job killed mid-epoch,
-- for tests/lua/resume_spec.lua.
--   serlua resume_kill.lua --after NAME --forward N -- SCRIPT ARGS...
local ser = require "ser"
local fault = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "fault_at_forward.lua")

local i, after, forward = 1, nil, nil
while arg[i] and arg[i] ~= "--" do
  if arg[i] == "--after" then after = arg[i + 1]
  elseif arg[i] == "--forward" then forward = tonumber(arg[i + 1])
  elseif arg[i] == "--help" or arg[i] == "-h" then
    print("usage: serlua resume_kill.lua --after NAME --forward N -- SCRIPT ARGS...")
    os.exit(0)
  end
  i = i + 2
end
assert(after and forward and arg[i] == "--" and arg[i + 1], "usage: resume_kill.lua --after NAME --forward N -- SCRIPT ARGS...")

local build_model = ser.recipe.build_model
ser.recipe.build_model = function(r, ...)
  local model = build_model(r, ...)
  if r.name == after then fault.arm(model, forward, "die") end
  return model
end

local script, rest = arg[i + 1], {}
for k = i + 2, #arg do rest[#rest + 1] = arg[k] end
rest[0] = script
arg = rest
dofile(script)
