-- The corpus object: labelled items, the class list, what was skipped, counts, a summary,
-- and speaker-independent splits and folds. Parts of a split are corpora too and keep the
-- parent's class list, so label indices mean the same thing in every part.
local names = require "ser.data.names"
local options = require "ser.options"

local Corpus = {}
Corpus.__index = Corpus
Corpus.__name = "ser.data.Corpus"

local M = { Corpus = Corpus }

-- Warnings go through one replaceable function (tests capture them; scripts may silence them).
function M.warn(msg) io.stderr:write("ser.data: warning: ", msg, "\n") end

-- Speakers sort numerically when they are numbers, then as strings.
local function speaker_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == "number" end
  return a < b
end
M.speaker_less = speaker_less

-- Canonical classes first in their canonical order, then any other labels alphabetically.
function M.order_classes(labels)
  local list = {}
  for l in pairs(labels) do list[#list + 1] = l end
  table.sort(list, function(a, b)
    local ra, rb = names.canonical_rank[a], names.canonical_rank[b]
    if ra and rb then return ra < rb end
    if ra or rb then return ra ~= nil end
    return a < b
  end)
  return list
end

-- items: array of {path, label, speaker, ...}; fields: classes (optional, fixed order),
-- skipped, root, audio (an [N, T] tensor whose row k is item.row == k), sr, name.
function M.new(items, fields)
  fields = fields or {}
  local self = setmetatable({
    items = items, skipped = fields.skipped or {}, root = fields.root, name = fields.name or "corpus",
    audio = fields.audio, sr = fields.sr, seconds = fields.seconds, synthetic = fields.synthetic,
    warnings = fields.warnings or {},
  }, Corpus)
  local classes = fields.classes
  if not classes then
    local present = {}
    for _, it in ipairs(items) do present[it.label] = true end
    classes = M.order_classes(present)
  end
  self.classes, self.class_index = classes, {}
  for i, c in ipairs(classes) do self.class_index[c] = i end
  for _, it in ipairs(items) do
    it.y = self.class_index[it.label]
    if not it.y then
      error(("corpus: item '%s' has label '%s', which is not in the class list {%s}")
        :format(it.path or "?", tostring(it.label), table.concat(classes, ", ")), 2)
    end
  end
  self:recount()
  return self
end

function Corpus:recount()
  local by_class, by_speaker = {}, {}
  for _, c in ipairs(self.classes) do by_class[c] = 0 end
  for _, it in ipairs(self.items) do
    by_class[it.label] = by_class[it.label] + 1
    if it.speaker ~= nil then by_speaker[it.speaker] = (by_speaker[it.speaker] or 0) + 1 end
  end
  self.counts = { class = by_class, speaker = by_speaker }
end

function Corpus:__len() return #self.items end
function Corpus:size() return #self.items end

-- Sorted list of the speakers present.
function Corpus:speakers()
  local list = {}
  for s in pairs(self.counts.speaker) do list[#list + 1] = s end
  table.sort(list, speaker_less)
  return list
end

-- Array of 1-based class indices, one per item.
function Corpus:labels()
  local y = {}
  for i, it in ipairs(self.items) do y[i] = it.y end
  return y
end

-- A corpus of the items for which keep(item) is true, sharing classes, audio and sr.
function Corpus:subset(keep, name)
  local items = {}
  for _, it in ipairs(self.items) do
    if keep(it) then items[#items + 1] = it end
  end
  return M.new(items, { classes = self.classes, root = self.root, name = name or self.name,
    audio = self.audio, sr = self.sr, seconds = self.seconds, synthetic = self.synthetic })
end

-- A smaller corpus with at most per_speaker_class items of each (speaker, class), the first
-- ones in path order (deterministic), e.g. for a quick smoke run.
function Corpus:sample(spec)
  local k = spec and spec.per_speaker_class
  if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then
    error(("sample: per_speaker_class must be a whole number >= 1, got %s"):format(tostring(k)), 2)
  end
  local seen = {}
  return self:subset(function(it)
    local key = tostring(it.speaker) .. "\0" .. it.label
    seen[key] = (seen[key] or 0) + 1
    return seen[key] <= k
  end, self.name)
end

local function fmt_speakers(list, max)
  max = max or 12
  local parts = {}
  for i = 1, math.min(#list, max) do parts[i] = tostring(list[i]) end
  if #list > max then parts[#parts + 1] = ("... (%d in all)"):format(#list) end
  return table.concat(parts, ",")
end
M.fmt_speakers = fmt_speakers

function Corpus:summary()
  local lines = {}
  local n_spk = #self:speakers()
  lines[1] = ("%s: %d items, %d classes, %d speakers%s%s"):format(self.name, #self.items, #self.classes,
    n_spk, self.root and (" from " .. self.root) or "", self.synthetic and " (SYNTHETIC audio)" or "")
  local cls = {}
  for _, c in ipairs(self.classes) do cls[#cls + 1] = ("%s %d"):format(c, self.counts.class[c]) end
  lines[#lines + 1] = "  classes:  " .. table.concat(cls, ", ")
  if n_spk > 0 then
    local spk = {}
    for _, s in ipairs(self:speakers()) do spk[#spk + 1] = ("%s:%d"):format(s, self.counts.speaker[s]) end
    lines[#lines + 1] = "  speakers: " .. table.concat(spk, " ")
  end
  local no_speaker = 0
  for _, it in ipairs(self.items) do if it.speaker == nil then no_speaker = no_speaker + 1 end end
  if no_speaker > 0 then lines[#lines + 1] = ("  %d items have no speaker"):format(no_speaker) end
  if #self.skipped > 0 then
    local reasons, order = {}, {}
    for _, s in ipairs(self.skipped) do
      if not reasons[s.reason] then reasons[s.reason] = { n = 0, example = s.path }; order[#order + 1] = s.reason end
      reasons[s.reason].n = reasons[s.reason].n + 1
    end
    lines[#lines + 1] = ("  skipped %d files:"):format(#self.skipped)
    for _, r in ipairs(order) do
      lines[#lines + 1] = ("    %d x %s (e.g. %s)"):format(reasons[r].n, r, reasons[r].example)
    end
  end
  return table.concat(lines, "\n")
end

function Corpus:__tostring() return self:summary() end

-- Part specifications: {a, b} is the inclusive range a..b; {list = {...}} or any other table is
-- an explicit list of speakers; a function(speaker) -> boolean selects freely.
local function parse_part(spec, pname)
  if spec == nil then return { kind = "none", text = "{}" } end
  if type(spec) == "function" then return { kind = "fn", fn = spec, text = "<function>" } end
  if type(spec) ~= "table" then
    error(("split: %s must be a range {from, to}, a list of speakers or a function, got %s %s")
      :format(pname, type(spec), tostring(spec)), 3)
  end
  if spec.list then
    local set = {}
    for _, s in ipairs(spec.list) do set[s] = true end
    return { kind = "list", set = set, values = spec.list, text = "{" .. fmt_speakers(spec.list) .. "}" }
  end
  if #spec == 2 and type(spec[1]) == "number" and type(spec[2]) == "number" then
    if spec[1] > spec[2] then
      error(("split: %s range {%s, %s} is empty (from > to); write {%s, %s}")
        :format(pname, spec[1], spec[2], spec[2], spec[1]), 3)
    end
    return { kind = "range", lo = spec[1], hi = spec[2], text = ("{%s..%s}"):format(spec[1], spec[2]) }
  end
  local set = {}
  for _, s in ipairs(spec) do set[s] = true end
  return { kind = "list", set = set, values = spec, text = "{" .. fmt_speakers(spec) .. "}" }
end

local function part_has(p, s)
  if p.kind == "range" then return type(s) == "number" and s >= p.lo and s <= p.hi end
  if p.kind == "list" then return p.set[s] == true end
  if p.kind == "fn" then return p.fn(s) and true or false end
  return false
end

-- Overlap of two specs, found without the corpus (ranges, lists) and on its speakers.
local function overlap(a, b, speakers)
  if a.kind == "range" and b.kind == "range" and a.lo <= b.hi and b.lo <= a.hi then
    return ("%s..%s"):format(math.max(a.lo, b.lo), math.min(a.hi, b.hi))
  end
  for _, p in ipairs({ { a, b }, { b, a } }) do
    if p[1].kind == "list" then
      for _, s in ipairs(p[1].values) do
        if part_has(p[2], s) then return tostring(s) end
      end
    end
  end
  for _, s in ipairs(speakers) do
    if part_has(a, s) and part_has(b, s) then return tostring(s) end
  end
  return nil
end

local part_names = { "train", "val", "test" }

-- corpus:split{by = "speaker", train = {1,16}, val = {17,20}, test = {21,24}} -> train, val, test.
-- No part spec at all means RAVDESS's standard actors 1-16 / 17-20 / 21-24.
function Corpus:split(spec)
  spec = spec or {}
  local by = spec.by or "speaker"
  if by ~= "speaker" then
    error(("split: by = '%s' is not supported; splits are speaker-independent (by = \"speaker\")"):format(tostring(by)), 2)
  end
  options.check(spec, { "by", "train", "val", "test", "quiet" }, "split", 2, "key")
  local default = spec.train == nil and spec.val == nil and spec.test == nil
  if default then
    spec = { train = { 1, 16 }, val = { 17, 20 }, test = { 21, 24 }, quiet = spec.quiet }
  end
  local missing = {}
  for _, it in ipairs(self.items) do
    if it.speaker == nil then missing[#missing + 1] = it.path end
  end
  if #missing > 0 then
    error(("split by speaker: %d of %d items have no speaker (e.g. %s); use a naming scheme that "
      .. "names speakers or ser.data.manifest with a speaker column"):format(#missing, #self.items, missing[1]), 2)
  end
  local speakers = self:speakers()
  local parts = {}
  for i, pn in ipairs(part_names) do parts[i] = parse_part(spec[pn], pn) end
  for _, p in ipairs(parts) do
    if p.kind == "range" then
      for _, s in ipairs(speakers) do
        if type(s) ~= "number" then
          error(("split: range %s%s needs numeric speakers, but this corpus has speaker '%s'; give explicit lists")
            :format(p.text, default and " (the default RAVDESS split)" or "", tostring(s)), 2)
        end
      end
    end
  end
  for i = 1, 3 do
    for j = i + 1, 3 do
      local o = overlap(parts[i], parts[j], speakers)
      if o then
        error(("split: speaker %s would be in both %s %s and %s %s; parts must not share speakers")
          :format(o, part_names[i], parts[i].text, part_names[j], parts[j].text), 2)
      end
    end
  end
  local warn = spec.quiet and function() end or M.warn
  local out, unassigned = {}, {}
  for _, s in ipairs(speakers) do
    local hit = false
    for _, p in ipairs(parts) do hit = hit or part_has(p, s) end
    if not hit then unassigned[#unassigned + 1] = s end
  end
  for i, pn in ipairs(part_names) do
    local p = parts[i]
    local part = self:subset(function(it) return part_has(p, it.speaker) end, pn)
    part.spec = p.text
    if #part.items == 0 then
      part.warnings[#part.warnings + 1] = ("%s part is empty: no items of speakers %s in %s"):format(
        pn, p.text, self.root or self.name)
    else
      local absent = {}
      for _, c in ipairs(self.classes) do
        if part.counts.class[c] == 0 then absent[#absent + 1] = c end
      end
      if #absent > 0 then
        part.warnings[#part.warnings + 1] = ("%s part has no items of class %s"):format(pn, table.concat(absent, ", "))
      end
    end
    for _, w in ipairs(part.warnings) do warn(w) end
    out[i] = part
  end
  if #unassigned > 0 then
    local n = 0
    for _, s in ipairs(unassigned) do n = n + self.counts.speaker[s] end
    warn(("speakers %s (%d items) are in no part of the split"):format(fmt_speakers(unassigned), n))
  end
  return out[1], out[2], out[3]
end

-- corpus:folds{by = "speaker", k = 6, seed = nil} -> list of {train =, val =, speakers =}.
-- Speakers are sorted (or shuffled by seed) and cut into k contiguous groups whose sizes
-- differ by at most one; contiguous groups keep RAVDESS's odd/even (male/female) actors mixed.
function Corpus:folds(spec)
  spec = spec or {}
  local by, k = spec.by or "speaker", spec.k or 6
  if by ~= "speaker" then
    error(("folds: by = '%s' is not supported; folds are speaker-independent (by = \"speaker\")"):format(tostring(by)), 2)
  end
  if type(k) ~= "number" or k ~= math.floor(k) or k < 2 then
    error(("folds: k must be a whole number >= 2, got %s"):format(tostring(k)), 2)
  end
  for _, it in ipairs(self.items) do
    if it.speaker == nil then
      error(("folds by speaker: item '%s' has no speaker"):format(it.path or "?"), 2)
    end
  end
  local speakers = self:speakers()
  if #speakers < k then
    error(("folds: k = %d folds need at least %d speakers, the corpus has %d (%s)")
      :format(k, k, #speakers, fmt_speakers(speakers)), 2)
  end
  if spec.seed then
    -- Fisher-Yates with a small LCG so the order depends only on the seed, not on Lua's math.random.
    local state = math.floor(spec.seed) % 2147483647
    if state <= 0 then state = state + 2147483646 end
    for i = #speakers, 2, -1 do
      state = (state * 48271) % 2147483647
      local j = state % i + 1
      speakers[i], speakers[j] = speakers[j], speakers[i]
    end
  end
  local folds, start = {}, 1
  for f = 1, k do
    local size = math.floor(#speakers / k) + (f <= #speakers % k and 1 or 0)
    local held = {}
    for i = start, start + size - 1 do held[speakers[i]] = true end
    local group = {}
    for i = start, start + size - 1 do group[#group + 1] = speakers[i] end
    start = start + size
    local train = self:subset(function(it) return not held[it.speaker] end, ("fold%d-train"):format(f))
    local val = self:subset(function(it) return held[it.speaker] end, ("fold%d-val"):format(f))
    folds[f] = { train = train, val = val, speakers = group, fold = f }
  end
  return folds
end

return M
