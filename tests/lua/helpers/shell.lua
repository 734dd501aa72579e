-- Running a command from a spec: run(cmd) -> its output (stdout and stderr together) and exit
-- status. Load with dofile.
local M = {}

function M.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

return M
