-- ser.fs: the file-system helpers of the library and the experiments. Folder checks and
-- creation come from the C core (ser.core.fs), not a shell; text is written atomically
-- (temp file + rename: a reader sees the old file or the new one).
local C = require "ser.core.fs"

local M = { is_dir = C.is_dir, isatty = C.isatty }

-- Creates path and its parents; raises "what: <why>" when it cannot.
function M.mkdir_p(path, what)
  local ok, err = C.mkdir_p(path)
  if not ok then error(("%s%s"):format(what and (what .. ": ") or "", err), 2) end
  return path
end

-- Writes text to path atomically.
function M.write(path, text)
  local tmp = ("%s.tmp%d"):format(path, math.random(1, 1 << 30))
  local f, err = io.open(tmp, "wb")
  if not f then error(("cannot write %s: %s"):format(path, err), 2) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error(("cannot write %s: %s"):format(path, tostring(werr or cerr)), 2)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error(("cannot write %s: %s"):format(path, rerr), 2)
  end
end

-- Copies a file atomically (read whole, M.write): checkpoints are a few MB.
function M.copy(from, to)
  local f, err = io.open(from, "rb")
  if not f then error(("cannot copy %s: %s"):format(from, err), 2) end
  local data = f:read("a")
  f:close()
  M.write(to, data)
end

-- Creates OUT/plots and OUT/results and checks both are writable, so a bad --out fails
-- in a second rather than after an hour of training. Returns the two folders.
function M.prepare_output(out)
  local dirs = { out .. "/plots", out .. "/results" }
  for _, d in ipairs(dirs) do
    local ok = C.mkdir_p(d)
    if not ok or not C.is_dir(d) then
      error(("output folder %s cannot be created (check --out %s)"):format(d, out), 0)
    end
    local probe = d .. "/.write-test"
    local f = io.open(probe, "wb")
    if not f then error(("output folder %s is not writable (check --out %s)"):format(d, out), 0) end
    f:close()
    os.remove(probe)
  end
  return dirs[1], dirs[2]
end

return M
