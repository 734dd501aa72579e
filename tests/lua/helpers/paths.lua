-- Where a spec finds what it runs against, and two file checks:
--   build        the build under test: SER_TEST_BUILD, else build/ below the folder busted runs
--                in (the tree's root under make test)
--   serlua       that build's interpreter; have_serlua says whether it is built (specs that
--                start it use `paths.have_serlua and it or pending`)
--   shared       ../shared beside the tree (SER_SHARED overrides): real speech, the encoders
--   exists(p)    whether a file can be opened
--   read(p)      a whole file, raising with the OS's reason when it cannot be read
-- Load with dofile.
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

M.build = os.getenv("SER_TEST_BUILD") or "build"
M.serlua = M.build .. "/serlua"
M.have_serlua = M.exists(M.serlua)
M.shared = os.getenv("SER_SHARED") or (here .. "../../../../shared")

return M
