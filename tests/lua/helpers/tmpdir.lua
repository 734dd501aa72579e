-- Temporary folders for specs: make(tag) creates one with mktemp; cleanup() removes every
-- folder made since the last cleanup. Call cleanup from after_each (or teardown, for a folder
-- made in setup) so that the folders go also when a test fails.
-- Load with dofile: each spec file gets its own list.
local M = {}

local made = {}

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.make(tag)
  local p = assert(io.popen("mktemp -d /tmp/ser-spec-" .. (tag or "x") .. ".XXXXXX"))
  local d = p:read("l")
  p:close()
  assert(d and d ~= "", "mktemp -d failed")
  made[#made + 1] = d
  return d
end

-- chmod first: robustness specs make unreadable folders, which rm -rf cannot enter.
function M.cleanup()
  for _, d in ipairs(made) do
    os.execute("chmod -R u+rwx " .. quote(d) .. " 2>/dev/null; rm -rf " .. quote(d))
  end
  made = {}
end

return M
