-- Command-line helpers shared by the experiments' argparse parsers.
--
-- lua-argparse (0.7) reads every word that starts with '-' as an option, so `--lr -1`
-- stops with "unknown option '-1'" and only `--lr=-1` reaches the script's own check
-- ("--lr must be a number > 0"); `features.lua --floor -80` could not be typed at all.
-- cli.parse joins an option that takes a value with a negative number right after it
-- (`--lr -1` -> `--lr=-1`, `-l -1` -> `-l-1`) and then parses as usual, so the number
-- is read as the option's value. Nothing else changes: words after `--`, options that
-- take no value, and words that are not numbers are left alone.
local M = {}

-- alias -> true for every option of `parser` that takes at least one value. Reads
-- argparse's option list (`_options`, `_aliases`, `_maxargs`, stable since 0.6); if a
-- future argparse lays them out differently, nothing is joined (`--lr=-1` still works).
local function valued_aliases(parser)
  local set = {}
  if type(parser) ~= "table" or type(parser._options) ~= "table" then return set end
  for _, opt in ipairs(parser._options) do
    if type(opt) == "table" and type(opt._aliases) == "table" and type(opt._maxargs) == "number"
        and opt._maxargs > 0 then
      for _, alias in ipairs(opt._aliases) do set[alias] = true end
    end
  end
  return set
end

local function is_negative_number(word)
  return type(word) == "string" and word:sub(1, 1) == "-" and tonumber(word) ~= nil
end

-- Returns a new argument list with `--opt -N` written as `--opt=-N` for every option of
-- `parser` that takes a value; `argv` itself is not modified.
function M.join_negative_values(parser, argv)
  local valued = valued_aliases(parser)
  local out, i, n = {}, 1, #argv
  while i <= n do
    local word = argv[i]
    if word == "--" then
      table.move(argv, i, n, #out + 1, out)
      break
    end
    if valued[word] and is_negative_number(argv[i + 1]) then
      out[#out + 1] = word:sub(1, 2) == "--" and (word .. "=" .. argv[i + 1]) or (word .. argv[i + 1])
      i = i + 2
    else
      out[#out + 1] = word
      i = i + 1
    end
  end
  return out
end

-- parser:parse(argv) with negative option values joined as above; argv defaults to the
-- script's `arg`.
function M.parse(parser, argv)
  return parser:parse(M.join_negative_values(parser, argv or _G.arg or {}))
end

-- The checkpoint a scoring script was given (predict.lua, stream.lua, serve.lua): classes_csv
-- (--classes, comma-separated) names the classes of a checkpoint without a class list; a load
-- failure ends the script through the parser (usage and the reason); a note on stderr says when
-- the classes were assumed. Returns what ser.train.load_checkpoint returns. ser.train is required
-- here, not at the top, so that scripts using only cli.parse do not load the training stack.
function M.load_checkpoint(parser, path, classes_csv)
  local classes
  if classes_csv then
    classes = {}
    for c in classes_csv:gmatch("[^,]+") do classes[#classes + 1] = c end
  end
  local model, meta, features = require("ser.train").load_checkpoint(path, { classes = classes })
  if not model then parser:error(meta) end
  if meta.classes_assumed then
    io.stderr:write(("note: %s has no class list; assuming %s (--classes sets them)\n")
      :format(path, table.concat(meta.classes, ",")))
  end
  return model, meta, features
end

-- --speaker-clips PATH ... (stream.lua, serve.lua): the audio files named (a folder: the audio
-- files in it), or nil when none was given; a path without audio ends the script through the parser.
function M.speaker_clips(parser, list)
  local files
  for _, p in ipairs(list or {}) do
    local found, err = require("ser.data").audio_files(p)
    if not found then parser:error(("--speaker-clips %s: %s"):format(p, err)) end
    files = files or {}
    for _, f in ipairs(found) do files[#files + 1] = f end
  end
  return files
end

return M
