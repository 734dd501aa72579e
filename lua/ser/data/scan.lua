-- ser.data.scan(dir, opts): every audio file under dir, labelled from its name or folder.
local names = require "ser.data.names"
local corpus = require "ser.data.corpus"
local options = require "ser.options"
local core = require "ser.core.data"
local audio_info = require("ser.core.audio").info

local M = {}

-- Returns a corpus, or nil, message when dir is missing or holds no labelled audio
-- (conditions a script checks for, e.g. to fall back to the synthetic corpus).
function M.scan(dir, opts)
  if type(dir) ~= "string" then
    error(("scan: folder must be a string, got %s"):format(type(dir)), 2)
  end
  opts = opts or {}
  options.check(opts, { "label_from", "classes", "max_depth", "vocal_channel", "quiet" }, "scan", 2)
  if opts.label_from ~= nil and opts.label_from ~= "auto" and opts.label_from ~= "folder" then
    error(("scan: label_from must be \"auto\" or \"folder\", got %s"):format(tostring(opts.label_from)), 2)
  end
  if opts.vocal_channel ~= nil and opts.vocal_channel ~= "speech" and opts.vocal_channel ~= "song" then
    error(("scan: vocal_channel must be \"speech\" or \"song\", got %s"):format(tostring(opts.vocal_channel)), 2)
  end
  local root = dir:gsub("/+$", "")
  if root == "" then root = dir ~= "" and "/" or "" end
  local prefix = root == "/" and "/" or root .. "/"
  local ok, paths, problems = pcall(core.walk, root, opts.max_depth or 0)
  if not ok then return nil, paths end
  local items, skipped = {}, {}
  for _, p in ipairs(problems) do
    local path, reason = p:match("^(.*): ([^:]*)$")
    skipped[#skipped + 1] = { path = path or p, reason = reason or "unreadable" }
  end
  local fixed
  if opts.classes then
    fixed = {}
    for _, c in ipairs(opts.classes) do fixed[c] = true end
  end
  for _, path in ipairs(paths) do
    local _, ext = names.split_path(path)
    if not names.audio_extensions[ext] then
      skipped[#skipped + 1] = { path = path, reason = ("not an audio file (.%s)"):format(ext) }
    else
      -- infer from the path below the root so the root's own folder name is never a label
      local rel = path:sub(1, #prefix) == prefix and path:sub(#prefix + 1) or path
      local info, why = names.infer(rel, opts)
      if not info then
        skipped[#skipped + 1] = { path = path, reason = why }
      elseif opts.vocal_channel and info.vocal_channel and info.vocal_channel ~= opts.vocal_channel then
        skipped[#skipped + 1] = { path = path, reason = ("RAVDESS %s file (vocal_channel = %s asked)"):format(
          info.vocal_channel, opts.vocal_channel) }
      elseif fixed and not fixed[info.label] then
        skipped[#skipped + 1] = { path = path, reason = ("label '%s' is not in the requested classes"):format(info.label) }
      else
        info.path = path
        items[#items + 1] = info
      end
    end
  end
  if #items == 0 then
    local exts = {}
    for e in pairs(names.audio_extensions) do exts[#exts + 1] = "." .. e end
    table.sort(exts)
    local msg = ("scan: no labelled audio files under '%s' (%d files seen, %d skipped; looked for %s)")
      :format(dir, #paths, #skipped, table.concat(exts, " "))
    if #skipped > 0 then msg = msg .. ("; first skip: %s (%s)"):format(skipped[1].path, skipped[1].reason) end
    return nil, msg
  end
  -- Speakers of different corpora may share numbers (RAVDESS actor 3, EMO-DB speaker 03):
  -- when corpora are mixed, speakers are prefixed with the corpus name.
  local datasets, nd = {}, 0
  for _, it in ipairs(items) do
    if not datasets[it.dataset] then datasets[it.dataset] = true; nd = nd + 1 end
  end
  local warnings = {}
  if nd > 1 then
    for _, it in ipairs(items) do
      if it.speaker ~= nil then it.speaker = it.dataset .. ":" .. tostring(it.speaker) end
    end
    local list = {}
    for d in pairs(datasets) do list[#list + 1] = d end
    table.sort(list)
    warnings[1] = ("scan: %s holds several corpora (%s); speakers are named corpus:speaker")
      :format(dir, table.concat(list, ", "))
    if not opts.quiet then corpus.warn(warnings[1]) end
  end
  local classes = opts.classes
  return corpus.new(items, { classes = classes, skipped = skipped, root = root, name = root:match("([^/]+)$") or root,
    warnings = warnings })
end

-- The audio files a user names by path: a file as it is, or every audio file under a folder
-- (its subfolders too; sorted; other files ignored). nil and why when there is none.
function M.audio_files(path)
  local is_audio, why = audio_info(path)
  if is_audio then return { path } end
  local ok, paths = pcall(core.walk, path, 0)
  if not ok then
    -- not a folder either: the reason it is not audio says more (unless it does not exist)
    local folder_err = tostring(paths):gsub("^scan: ", "")
    return nil, folder_err:find("is not a folder", 1, true) and tostring(why) or folder_err
  end
  local out = {}
  for _, p in ipairs(paths) do
    local _, ext = names.split_path(p)
    if names.audio_extensions[ext] then out[#out + 1] = p end
  end
  table.sort(out)
  if #out == 0 then return nil, ("no audio files under '%s'"):format(path) end
  return out
end

return M
