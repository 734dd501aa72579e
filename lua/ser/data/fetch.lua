-- ser.data.fetch_ravdess(dest, opts): `make ravdess` from Lua. The download itself lives in
-- one place, scripts/fetch-ravdess.sh (curl, resume, MD5, atomic unpack); this runs it and
-- scans the result:  serlua -e 'ser.data.fetch_ravdess()'  from the source folder.
local scan = require "ser.data.scan"

local M = {}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- opts: url, md5, files (expected count), script (path of fetch-ravdess.sh), quiet.
-- Returns the scanned corpus, or nil, message when the download or the check failed.
function M.fetch_ravdess(dest, opts)
  dest, opts = dest or "data/ravdess", opts or {}
  if type(dest) ~= "string" or dest == "" then error("fetch_ravdess: dest must be a folder name", 2) end
  local script = opts.script or os.getenv("SER_FETCH_RAVDESS") or "scripts/fetch-ravdess.sh"
  if not exists(script) then
    error(("fetch_ravdess: %s not found (run from the serlua source folder, or set SER_FETCH_RAVDESS or opts.script)")
      :format(script), 2)
  end
  local env = {}
  for key, var in pairs({ url = "RAVDESS_URL", md5 = "RAVDESS_MD5", files = "RAVDESS_FILES" }) do
    if opts[key] ~= nil then env[#env + 1] = var .. "=" .. quote(opts[key]) end
  end
  table.sort(env)
  local cmd = ("%s bash %s %s"):format(table.concat(env, " "), quote(script), quote(dest))
  -- quiet: no progress output; the script's error messages go into the returned message
  local err_path = opts.quiet and os.tmpname()
  if err_path then cmd = cmd .. " >/dev/null 2>" .. quote(err_path) end
  local ok = os.execute(cmd)
  local why = "its messages are above"
  if err_path then
    local f = io.open(err_path, "r")
    why = f and f:read("a"):gsub("%s+$", ""):gsub("\n", "; ") or "no message"
    if f then f:close() end
    os.remove(err_path)
  end
  if not ok then
    return nil, ("fetch_ravdess: %s failed (%s); nothing was unpacked to %s"):format(script, why, dest)
  end
  return scan.scan(dest)
end

return M
