-- ser.stream.format: the text forms of ser.stream's windows and segments, for
-- experiments/stream.lua and other programs that print them.
--   segment_line(s)        -> "start end label confidence" (seconds as plain numbers)
--   json(value)            -> one line of JSON (objects, arrays, strings, numbers, booleans)
--   csv_header(classes)    -> the per-window CSV's header
--   csv_row(w, classes)    -> a window as a CSV row (empty probability cells when not scored)
local M = {}

local function num(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if math.type(v) == "integer" then return tostring(v) end
  return (("%.6f"):format(v):gsub("0+$", ""):gsub("%.$", ".0"))
end

function M.segment_line(s)
  return ("%.2f %.2f %s %.3f"):format(s.start, s.stop, s.label, s.confidence)
end

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
  ['\t'] = '\\t' }

local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

local function encode(v, out)
  local t = type(v)
  if t == "number" then
    out[#out + 1] = num(v)
  elseif t == "string" then
    out[#out + 1] = str(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "nil" then
    out[#out + 1] = "null"
  elseif t == "table" then
    if #v > 0 or next(v) == nil then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        encode(x, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)   -- a stable order, so that lines can be compared
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = str(k) .. ":"
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    error(("ser.stream.format.json: cannot encode a %s"):format(t), 2)
  end
end

function M.json(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

-- Probabilities by class name, for JSON.
function M.by_class(probs, classes)
  if not probs then return nil end
  local out = {}
  for i, c in ipairs(classes) do out[c] = probs[i] end
  return out
end

local function csv_field(s)
  s = tostring(s)
  if s:find('[,"\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function M.csv_header(classes)
  local cols = { "start", "stop", "voiced", "label", "confidence" }
  for _, c in ipairs(classes) do cols[#cols + 1] = csv_field(c) end
  for _, c in ipairs(classes) do cols[#cols + 1] = csv_field("raw_" .. c) end
  return table.concat(cols, ",")
end

function M.csv_row(w, classes)
  local cols = { ("%.2f"):format(w.start), ("%.2f"):format(w.stop), w.voiced and "1" or "0",
    w.label and csv_field(w.label) or "", w.confidence and ("%.4f"):format(w.confidence) or "" }
  for i = 1, #classes do cols[#cols + 1] = w.probs and ("%.4f"):format(w.probs[i]) or "" end
  for i = 1, #classes do cols[#cols + 1] = w.raw and ("%.4f"):format(w.raw[i]) or "" end
  return table.concat(cols, ",")
end

return M
