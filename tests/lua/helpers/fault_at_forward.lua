-- Fault injection for the kill-and-resume tests (resume_kill.lua, dist_fit.lua): wraps a
-- model's forward so that its call-th training forward (eval-mode calls do not count) either
-- raises "injected failure" (fault "fail") or kills this process with SIGKILL (fault "die"),
-- as a crash mid-epoch would. Load with dofile.
local M = {}

local function kill_self()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  os.execute("kill -KILL " .. pid)
end

function M.arm(model, call, fault)
  local forward, calls = model.forward, 0
  model.forward = function(self, x)
    if self.training then
      calls = calls + 1
      if calls == call then
        if fault == "fail" then error("injected failure") end
        kill_self()
      end
    end
    return forward(self, x)
  end
  return model
end

return M
