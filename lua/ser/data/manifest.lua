-- ser.data.manifest(csv_path): a corpus from a CSV listing path,label,speaker.
local names = require "ser.data.names"
local corpus = require "ser.data.corpus"

local M = {}

-- RFC 4180 records: fields separated by commas, optionally in double quotes ("" is a quote;
-- quoted fields may hold commas and newlines). Returns a list of {line =, fields = {...}}.
local function parse_csv(text, path)
  local records, fields, field = {}, {}, {}
  local i, n, line, record_line = 1, #text, 1, 1
  local quoted_field = false
  local function end_field()
    fields[#fields + 1] = table.concat(field)
    field, quoted_field = {}, false
  end
  local function end_record()
    end_field()
    if not (#fields == 1 and fields[1] == "") then records[#records + 1] = { line = record_line, fields = fields } end
    fields = {}
    record_line = line
  end
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' and #field == 0 and not quoted_field then
      local start_line = line
      local j = i + 1
      while true do
        if j > n then
          error(("manifest %s:%d: quoted field is never closed (missing \")"):format(path, start_line), 0)
        end
        local d = text:sub(j, j)
        if d == '"' then
          if text:sub(j + 1, j + 1) == '"' then
            field[#field + 1] = '"'; j = j + 2
          else
            j = j + 1; break
          end
        else
          if d == "\n" then line = line + 1 end
          field[#field + 1] = d; j = j + 1
        end
      end
      quoted_field = true
      local nxt = text:sub(j, j)
      if nxt ~= "," and nxt ~= "\n" and nxt ~= "\r" and nxt ~= "" then
        error(("manifest %s:%d: unexpected '%s' after a closing quote (expected , or end of line)")
          :format(path, line, nxt), 0)
      end
      i = j
    elseif c == "," then
      end_field(); i = i + 1
    elseif c == "\r" and text:sub(i + 1, i + 1) == "\n" then
      i = i + 1
    elseif c == "\n" then
      line = line + 1; end_record(); i = i + 1
    else
      if quoted_field then
        error(("manifest %s:%d: text after a quoted field (expected , or end of line)"):format(path, line), 0)
      end
      field[#field + 1] = c; i = i + 1
    end
  end
  if #field > 0 or #fields > 0 or quoted_field then end_record() end
  return records
end
M.parse_csv = parse_csv

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- Returns a corpus; raises on a malformed file with the line number. Files listed but
-- missing go to corpus.skipped (reason "file not found").
function M.manifest(path, opts)
  if type(path) ~= "string" then error(("manifest: path must be a string, got %s"):format(type(path)), 2) end
  opts = opts or {}
  local f, err = io.open(path, "rb")
  if not f then error(("manifest: cannot open '%s': %s"):format(path, err), 2) end
  local text = f:read("a")
  f:close()
  text = text:gsub("^\239\187\191", "") -- UTF-8 byte-order mark written by spreadsheet programs
  local ok, records = pcall(parse_csv, text, path)
  if not ok then error(records, 2) end
  if #records == 0 then error(("manifest %s: empty file (expected a header path,label,speaker)"):format(path), 2) end
  local header, col = records[1], {}
  for k, name in ipairs(header.fields) do
    local key = trim(name):lower()
    if col[key] then error(("manifest %s:%d: column '%s' appears twice in the header"):format(path, header.line, key), 2) end
    col[key] = k
  end
  if not col.path or not col.label then
    error(("manifest %s:%d: the header must name the columns path and label (and speaker); got '%s'")
      :format(path, header.line, table.concat(header.fields, ",")), 2)
  end
  local base = path:match("^(.*)/[^/]*$") or "."
  local items, skipped = {}, {}
  for r = 2, #records do
    local rec = records[r]
    if #rec.fields ~= #header.fields then
      error(("manifest %s:%d: %d fields, the header has %d (%s)")
        :format(path, rec.line, #rec.fields, #header.fields, table.concat(header.fields, ",")), 2)
    end
    local p, label = trim(rec.fields[col.path]), trim(rec.fields[col.label])
    if p == "" then error(("manifest %s:%d: empty path"):format(path, rec.line), 2) end
    if label == "" then error(("manifest %s:%d: empty label for %s"):format(path, rec.line, p), 2) end
    if p:sub(1, 1) ~= "/" then p = base .. "/" .. p end
    local item = { path = p, label = names.canonical_label(label) or label:lower(), dataset = "manifest", line = rec.line }
    if col.speaker then
      local s = trim(rec.fields[col.speaker])
      if s ~= "" then item.speaker = s:match("^%d+$") and tonumber(s) or s end
    end
    for name, k in pairs(col) do
      if name ~= "path" and name ~= "label" and name ~= "speaker" and item[name] == nil then item[name] = rec.fields[k] end
    end
    local fh = io.open(p, "rb")
    if fh then
      fh:close()
      items[#items + 1] = item
    else
      skipped[#skipped + 1] = { path = p, reason = ("file not found (manifest line %d)"):format(rec.line) }
    end
  end
  if #items == 0 then
    error(("manifest %s: none of its %d entries is a readable file%s"):format(path, #records - 1,
      skipped[1] and (" (first: " .. skipped[1].path .. ")") or ""), 2)
  end
  if #skipped > 0 and not opts.quiet then
    corpus.warn(("manifest %s: %d listed files are missing (first: %s)"):format(path, #skipped, skipped[1].path))
  end
  return corpus.new(items, { classes = opts.classes, skipped = skipped, root = base,
    name = path:match("([^/]+)$") })
end

return M
