-- ser.stream.input: audio for a stream, a block at a time, so that memory stays bounded
-- whatever the input's length.
--
--   for x in input.pcm(io.stdin, { format = "s16", channels = 1, block = 1600 }) do ... end
--   for x in input.file("long.flac", { seconds = 10 }) do ... end    -- also returns the file's rate
--
-- pcm: raw little-endian PCM (s16 or f32, channels interleaved and averaged into one), decoded
-- in C (ser.core.stream.pcm_decode); a block that ends inside a frame keeps those bytes for the
-- next one. When the input ends inside a frame (an odd byte count for mono s16), the iterator
-- raises an error that says how many bytes were left over, after every whole frame before it
-- was handed out.
-- file: an audio file (anything ser.audio.load reads) decoded `seconds` at a time at its own
-- rate (libsndfile seeks), mono; the decode cache is not used.
local cstream = require "ser.core.stream"
local audio = require "ser.core.audio"
local options = require "ser.options"

local M = {}

M.FORMATS = { s16 = 2, f32 = 4 }

function M.pcm(fh, o)
  options.check(o, { "format", "channels", "block" }, "ser.stream.input.pcm", 2)
  o = o or {}
  local format, channels, block = o.format or "s16", o.channels or 1, o.block or 4096
  local width = M.FORMATS[format]
  if not width then
    error(("ser.stream.input.pcm: format must be \"s16\" or \"f32\", got %s"):format(tostring(format)), 2)
  end
  if type(channels) ~= "number" or channels ~= math.floor(channels) or channels < 1 or channels > 64 then
    error(("ser.stream.input.pcm: channels must be a whole number in 1..64, got %s"):format(tostring(channels)), 2)
  end
  local fbytes = width * channels
  local carry, frames = "", 0
  return function()
    while true do
      local bytes = fh:read(math.max(fbytes, block))
      if not bytes then
        if #carry > 0 then
          error(("ser.stream: the PCM input ended inside a frame: %d byte%s left over after %d whole frames " ..
            "(%s with %d channel%s is %d bytes a frame); the stream was cut short or --format/--channels do not " ..
            "match it"):format(#carry, #carry == 1 and "" or "s", frames, format, channels,
            channels == 1 and "" or "s", fbytes), 0)
        end
        return nil
      end
      if #carry > 0 then bytes, carry = carry .. bytes, "" end
      local x, used = cstream.pcm_decode(bytes, format, channels)
      if used < #bytes then carry = bytes:sub(used + 1) end
      local n = x:shape()[1]
      frames = frames + n
      if n > 0 then return x end
    end
  end
end

function M.file(path, o)
  options.check(o, { "seconds" }, "ser.stream.input.file", 2)
  local seconds = o and o.seconds or 10
  local info, err = audio.info(path)
  if not info then error(err, 0) end
  if info.frames <= 0 then error(("%s: the file holds no audio frames"):format(path), 0) end
  local sr, total = info.sr, info.frames
  local chunk = math.max(1, math.floor(seconds * sr))
  local at = 0
  return function()
    if at >= total then return nil end
    local n = math.min(chunk, total - at)
    local x, e = audio.load(path, { sr = 0, mono = true, offset = at / sr, seconds = n / sr, cache = false })
    if not x then error(e, 0) end
    at = at + n
    return x
  end, sr
end

return M
