-- Shared by the robustness_*_spec.lua files: temporary folders, raw file writers
-- (WAV headers built byte by byte so that every bit depth, rate, channel count and
-- damaged variant can be made without any other tool), and small process helpers.
local H = {}

function H.sh(cmd) return os.execute(cmd) == true end

function H.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
H.tmpdir, H.cleanup = tmp.make, tmp.cleanup

function H.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end
function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
H.exists = paths.exists

-- Sample encoders: x in [-1, 1] -> little-endian bytes of one sample.
local enc = {
  [8] = function(x) return string.pack("<I1", math.floor(128 + 127 * x + 0.5)) end, -- WAV 8-bit is unsigned
  [16] = function(x) return string.pack("<i2", math.floor(32767 * x + 0.5)) end,
  [24] = function(x) return string.pack("<i3", math.floor(8388607 * x + 0.5)) end,
  [32] = function(x) return string.pack("<i4", math.floor(2147483647 * x + 0.5)) end,
}

-- A canonical RIFF/WAVE file. opts: sr, channels, bits (8/16/24/32), float (32-bit
-- IEEE float), frames, fn(t, c) -> sample (default a 440 Hz tone), data_bytes (the size the
-- header claims for the data chunk, default the real one), samples (raw sample list,
-- interleaved, overrides fn; used for NaN/Inf).
function H.wav(opts)
  local sr, ch, frames = opts.sr or 16000, opts.channels or 1, opts.frames or 1600
  local float = opts.float
  local bits = float and 32 or (opts.bits or 16)
  local parts = {}
  if opts.samples then
    for i, v in ipairs(opts.samples) do parts[i] = float and string.pack("<f", v) or enc[bits](v) end
  else
    local fn = opts.fn or function(t, c) return 0.5 * math.sin(2 * math.pi * 440 * c * t / sr) end
    for t = 0, frames - 1 do
      for c = 1, ch do
        local v = fn(t, c)
        parts[#parts + 1] = float and string.pack("<f", v) or enc[bits](v)
      end
    end
  end
  local data = table.concat(parts)
  local block = ch * bits // 8
  -- byte rate wraps like a 32-bit header field would (absurd rates are written on purpose)
  local fmt = string.pack("<I2I2I4I4I2I2", float and 3 or 1, ch, sr, (sr * block) % 4294967296, block, bits)
  local claimed = opts.data_bytes or #data
  return "RIFF" .. string.pack("<I4", 4 + 8 + #fmt + 8 + claimed) .. "WAVE" ..
    "fmt " .. string.pack("<I4", #fmt) .. fmt .. "data" .. string.pack("<I4", claimed) .. data
end

function H.is_root()
  local p = io.popen("id -u")
  local u = p:read("l")
  p:close()
  return u == "0"
end

-- Resident set size of this process in bytes (Linux /proc/self/statm, second field in pages).
function H.rss()
  local s = H.read("/proc/self/statm")
  local pages = tonumber(s:match("^%d+%s+(%d+)"))
  return pages * 4096
end

-- Runs fn and returns the error message (string), failing if fn does not raise. The
-- "chunk:line: " position that luaL_error/error(msg, 2) add is removed so that specs compare
-- the message itself.
function H.err(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert(not ok, "expected an error, got success")
  local m = tostring(msg)
  return (m:gsub("^[^\n ]-%.lua:%d+: ", ""):gsub("^%[string [^\n]-%]:%d+: ", ""))
end

-- A number out of whatever a reduction returned (a Lua number or a 0-d tensor).
H.num = dofile(here .. "helpers/numeric.lua").num

-- Path of the serlua binary of the build under test (busted runs against $SER_TEST_BUILD).
function H.serlua() return paths.serlua end

return H
