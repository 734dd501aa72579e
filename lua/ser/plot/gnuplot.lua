-- Running gnuplot: one script per chart, data inline as $name << EOD blocks, the PNG drawn to
-- a temporary name beside the target and renamed over it only when gnuplot succeeded.
local fs = require "ser.core.fs"

local M = {}

M.font = "DejaVu Sans"
-- Tableau-10, readable on white and distinguishable for the common colour blindnesses.
M.palette = { "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac" }

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local available
function M.available()
  if available == nil then
    available = os.execute("command -v gnuplot >/dev/null 2>&1") == true
  end
  return available
end

-- A string literal for a gnuplot script (noenhanced mode, so only quotes and backslashes matter).
function M.str(s)
  s = tostring(s):gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n")
  return '"' .. s .. '"'
end

-- A number gnuplot reads back exactly enough; NaN and infinities become the missing marker "NaN".
function M.num(v)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return "NaN" end
  if v == math.floor(v) and math.abs(v) < 1e15 then return ("%d"):format(v) end
  return ("%.7g"):format(v)
end

-- $name << EOD block from rows of values.
function M.block(name, rows)
  local out = { "$" .. name .. " << EOD" }
  for _, r in ipairs(rows) do
    local cells = {}
    for i, v in ipairs(r) do cells[i] = type(v) == "string" and M.str(v) or M.num(v) end
    out[#out + 1] = table.concat(cells, " ")
  end
  out[#out + 1] = "EOD"
  return table.concat(out, "\n")
end

local function dirname(path) return path:match("^(.*)/[^/]*$") end

-- Checks the common options: out (required .png path), width, height.
function M.check_out(opts, fname, def_w, def_h)
  if type(opts) ~= "table" then error(("plot.%s: options table expected (with out = \"file.png\")"):format(fname), 3) end
  local out = opts.out
  if type(out) ~= "string" or out == "" then
    error(("plot.%s: option out (the PNG path) is required"):format(fname), 3)
  end
  if not out:lower():match("%.png$") then
    error(("plot.%s: out = '%s' must end in .png (the pngcairo terminal writes PNG)"):format(fname, out), 3)
  end
  local w, h = opts.width or def_w, opts.height or def_h
  for k, v in pairs({ width = w, height = h }) do
    if type(v) ~= "number" or v < 100 or v > 10000 or v ~= math.floor(v) then
      error(("plot.%s: %s must be a whole number of pixels in 100..10000, got %s"):format(fname, k, tostring(v)), 3)
    end
  end
  return out, w, h
end

-- Renders script (without terminal/output lines) to out at w x h. Raises with gnuplot's
-- stderr when it fails; returns out.
function M.render(fname, script, out, w, h)
  if not M.available() then
    error(("plot.%s: gnuplot is not installed (Debian: apt-get install gnuplot-nox; scripts/install-deps.sh does it)")
      :format(fname), 3)
  end
  local dir = dirname(out)
  if dir and dir ~= "" and not fs.is_dir(dir) then
    local ok, err = fs.mkdir_p(dir)
    if not ok then error(("plot.%s: cannot create the folder '%s' for %s: %s"):format(fname, dir, out, err), 3) end
  end
  -- a unique name beside the target (same file system, so the final rename is atomic)
  local unique = os.tmpname()
  os.remove(unique)
  local tmp_png = out:gsub("%.png$", "") .. "." .. unique:match("[^/]+$") .. ".tmp.png"
  local script_path, err_path = os.tmpname(), os.tmpname()
  local f = assert(io.open(script_path, "w"))
  f:write(("set terminal pngcairo size %d,%d noenhanced font %s\n"):format(w, h, M.str(M.font .. ",12")))
  f:write("set output ", M.str(tmp_png), "\n")
  f:write("set encoding utf8\n", script, "\nunset output\n")
  f:close()
  local ok = os.execute(("gnuplot %s 2>%s"):format(shell_quote(script_path), shell_quote(err_path)))
  local ef = io.open(err_path, "r")
  local stderr = ef and ef:read("a") or ""
  if ef then ef:close() end
  os.remove(err_path)
  if not ok then
    os.remove(tmp_png)
    local keep = os.getenv("SER_PLOT_KEEP_SCRIPT")
    if not keep then os.remove(script_path) end
    error(("plot.%s: gnuplot failed drawing %s:\n%s"):format(fname, out, stderr ~= "" and stderr or "(no message)"), 3)
  end
  os.remove(script_path)
  local renamed, rerr = os.rename(tmp_png, out)
  if not renamed then
    os.remove(tmp_png)
    error(("plot.%s: cannot move the PNG into place at %s: %s"):format(fname, out, rerr), 3)
  end
  M.last_stderr = stderr -- gnuplot warnings of the last chart (empty when clean)
  return out
end

-- Converts a tensor or a (nested) table to nested Lua tables.
function M.totable(v, what, fname)
  if type(v) == "table" then return v end
  if type(v) == "userdata" and v.totable then return v:totable() end
  error(("plot.%s: %s must be a table or a tensor, got %s"):format(fname, what, type(v)), 3)
end

return M
