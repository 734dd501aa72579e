-- Label and speaker inference from file and folder names of the common emotional-speech
-- corpora. Pure functions of a path: ser.data.scan applies them to every audio file.
--
-- Each parser returns a table {label =, speaker =, dataset =, ...parsed fields} or nil, reason.
-- Labels are the canonical names below, so corpora can be pooled and compared.
local M = {}

-- Canonical emotion names in a stable order: RAVDESS's code order first (so a RAVDESS corpus
-- gets exactly its 8 classes in the dataset's own order), then EMO-DB's extra class.
M.canonical = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom" }

M.canonical_rank = {}
for i, name in ipairs(M.canonical) do M.canonical_rank[name] = i end

-- The extensions read as audio (lower case, no dot), as a set: the C core's list.
M.audio_extensions = {}
for _, ext in ipairs(require("ser.core.audio").extensions) do M.audio_extensions[ext] = true end

-- Synonyms seen in folder names and corpora (lower case) -> canonical name.
local synonyms = {
  neutral = "neutral", neu = "neutral", n = "neutral",
  calm = "calm",
  happy = "happy", happiness = "happy", hap = "happy", joy = "happy",
  sad = "sad", sadness = "sad",
  angry = "angry", anger = "angry", ang = "angry",
  fearful = "fearful", fear = "fearful", fea = "fearful", afraid = "fearful",
  disgust = "disgust", disgusted = "disgust", dis = "disgust",
  surprised = "surprised", surprise = "surprised", sur = "surprised", ps = "surprised",
  pleasant_surprise = "surprised", pleasant_surprised = "surprised",
  ["pleasant surprise"] = "surprised", boredom = "boredom", bored = "boredom",
}

-- Canonical name for a free-form label ("Anger", "pleasant_surprised"), or nil.
function M.canonical_label(s)
  if type(s) ~= "string" then return nil end
  return synonyms[s:lower()]
end

local ravdess_emotions = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }

-- RAVDESS: 03-01-05-02-01-01-12 = modality, vocal channel, emotion, intensity, statement,
-- repetition, actor (odd actors are male).
function M.ravdess(stem)
  local f = { stem:match("^(%d%d)%-(%d%d)%-(%d%d)%-(%d%d)%-(%d%d)%-(%d%d)%-(%d%d)$") }
  if #f ~= 7 then return nil end
  local n = {}
  for i = 1, 7 do n[i] = tonumber(f[i]) end
  local label = ravdess_emotions[n[3]]
  if not label then
    return nil, ("RAVDESS emotion code %s (field 3) is not one of 01..08"):format(f[3])
  end
  if n[2] ~= 1 and n[2] ~= 2 then
    return nil, ("RAVDESS vocal channel %s (field 2) is not 01 (speech) or 02 (song)"):format(f[2])
  end
  if n[7] < 1 then return nil, "RAVDESS actor 00 (field 7) is not a valid actor number" end
  return {
    dataset = "ravdess", label = label, speaker = n[7], actor = n[7],
    modality = n[1], vocal_channel = n[2] == 1 and "speech" or "song",
    intensity = n[4] == 2 and "strong" or "normal", statement = n[5], repetition = n[6],
    gender = n[7] % 2 == 1 and "male" or "female",
  }
end

local crema_emotions = { ANG = "angry", DIS = "disgust", FEA = "fearful", HAP = "happy", NEU = "neutral", SAD = "sad" }
local crema_levels = { LO = "low", MD = "medium", HI = "high", XX = "unspecified", X = "unspecified" }

-- CREMA-D: 1001_DFA_ANG_XX = actor, sentence, emotion, level.
function M.crema(stem)
  local actor, sentence, emo, level = stem:match("^(%d%d%d%d)_(%u%u%u)_(%u%u%u)_(%u%u?)$")
  if not actor then return nil end
  local label = crema_emotions[emo]
  if not label then return nil, ("CREMA-D emotion '%s' is not one of ANG DIS FEA HAP NEU SAD"):format(emo) end
  return {
    dataset = "crema-d", label = label, speaker = tonumber(actor), sentence = sentence,
    intensity = crema_levels[level] or level,
  }
end

local tess_emotions = {
  angry = "angry", disgust = "disgust", fear = "fearful", happy = "happy", neutral = "neutral",
  ps = "surprised", sad = "sad", pleasant_surprise = "surprised", pleasant_surprised = "surprised",
}

-- TESS: OAF_back_angry / YAF_dog_ps (speaker OAF or YAF, a word, the emotion); the folders
-- are named OAF_angry, YAF_pleasant_surprised, ...
function M.tess(stem, parent)
  local spk, word, emo = stem:match("^([OoYy][Aa][Ff])_([^_]+)_(.+)$")
  if spk then
    local label = tess_emotions[emo:lower()]
    if not label then return nil, ("TESS emotion '%s' is not one of angry disgust fear happy neutral ps sad"):format(emo) end
    return { dataset = "tess", label = label, speaker = spk:upper(), word = word:lower() }
  end
  if parent then
    local pspk, pemo = parent:match("^([OoYy][Aa][Ff])_(.+)$")
    if pspk and tess_emotions[pemo:lower()] then
      return { dataset = "tess", label = tess_emotions[pemo:lower()], speaker = pspk:upper(), word = stem:lower() }
    end
  end
  return nil
end

local savee_speakers = { DC = true, JE = true, JK = true, KL = true }
local savee_emotions = { a = "angry", d = "disgust", f = "fearful", h = "happy", n = "neutral", sa = "sad", su = "surprised" }

-- SAVEE: DC_a01 (speakers DC JE JK KL; a d f h n sa su + sentence number), or a01 inside a
-- folder named after the speaker (the AudioData/DC/ layout).
function M.savee(stem, parent)
  local spk, emo, num = stem:match("^(%u%u)_(%l%l?)(%d%d)$")
  if not spk and parent and savee_speakers[parent:upper()] then
    emo, num = stem:match("^(%l%l?)(%d%d)$")
    spk = emo and parent:upper()
  end
  if not spk or not savee_speakers[spk] then return nil end
  local label = savee_emotions[emo]
  if not label then return nil, ("SAVEE emotion '%s' is not one of a d f h n sa su"):format(emo) end
  return { dataset = "savee", label = label, speaker = spk, sentence = tonumber(num) }
end

local emodb_emotions = { W = "angry", L = "boredom", E = "disgust", A = "fearful", F = "happy", T = "sad", N = "neutral" }
local emodb_speakers = { [3] = true, [8] = true, [9] = true, [10] = true, [11] = true, [12] = true,
  [13] = true, [14] = true, [15] = true, [16] = true }

-- EMO-DB: 03a01Fa = speaker (2 digits), text code (a01..b10), German emotion letter, version.
function M.emodb(stem)
  local spk, text, emo, version = stem:match("^(%d%d)([ab]%d%d)(%u)(%l)$")
  if not spk then return nil end
  local label = emodb_emotions[emo]
  if not label then return nil, ("EMO-DB emotion letter '%s' is not one of W L E A F T N"):format(emo) end
  local speaker = tonumber(spk)
  if not emodb_speakers[speaker] then
    return nil, ("EMO-DB speaker %s is not one of 03 08 09 10 11 12 13 14 15 16"):format(spk)
  end
  return { dataset = "emo-db", label = label, speaker = speaker, text = text, version = version }
end

local parsers = { M.ravdess, M.crema, M.tess, M.savee, M.emodb }

-- Splits "a/b/c/name.ext" into stem "name", extension "ext" (lower case) and parent folders.
function M.split_path(path)
  local dir, base = path:match("^(.*)/([^/]*)$")
  if not dir then dir, base = "", path end
  local stem, ext = base:match("^(.*)%.([^.]+)$")
  if not stem then stem, ext = base, "" end
  local parent = dir:match("([^/]+)$")
  local grandparent = dir:match("([^/]+)/[^/]+$")
  return stem, ext:lower(), parent, grandparent
end

-- Infers {label, speaker, dataset, ...} for one audio path; nil, reason when it cannot.
-- opts.label_from = "folder" takes the parent folder name verbatim (any label set).
function M.infer(path, opts)
  opts = opts or {}
  local stem, _, parent, grandparent = M.split_path(path)
  if opts.label_from == "folder" then
    if not parent then return nil, "no parent folder to take the label from" end
    return { dataset = "folder", label = M.canonical_label(parent) or parent:lower(), speaker = nil }
  end
  local first_reason
  for _, parse in ipairs(parsers) do
    local info, reason = parse(stem, parent)
    if info then return info end
    first_reason = first_reason or reason
  end
  if first_reason then return nil, first_reason end
  -- Folder-per-label layouts: angry/x.wav, or angry/speaker7/x.wav (speaker folder below label).
  local label = M.canonical_label(parent)
  if label then return { dataset = "folder", label = label } end
  label = M.canonical_label(grandparent)
  if label then return { dataset = "folder", label = label, speaker = parent } end
  return nil, "no known naming scheme (RAVDESS, CREMA-D, TESS, SAVEE, EMO-DB) and no emotion folder name"
end

return M
