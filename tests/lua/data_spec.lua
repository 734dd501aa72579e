-- ser.data: name parsing, scanning made-up trees, manifests, speaker splits and folds, the
-- synthetic corpus, the loader, and scripts/fetch-ravdess.sh against a local zip.
local ser = require "ser"
local data = ser.data
local names = require "ser.data.names"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local numeric = dofile(here .. "helpers/numeric.lua")
local paths = dofile(here .. "helpers/paths.lua")

local function sh(cmd) return os.execute(cmd) == true end
local tmp = dofile(here .. "helpers/tmpdir.lua")
local function touch(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir then sh("mkdir -p '" .. dir .. "'") end
  local f = assert(io.open(path, "wb"))
  f:write("x")
  f:close()
end
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end
local exists = paths.exists

-- Warnings are captured instead of printed.
local warnings = {}
data.set_warn(function(m) warnings[#warnings + 1] = m end)
local function warned(pattern)
  for _, w in ipairs(warnings) do if w:find(pattern) then return true end end
  return false
end

-- A made-up RAVDESS tree: actors 1..n, every emotion, two takes each (empty files: scan does not decode).
local function ravdess_tree(n_actors, emotions)
  local dir = tmp.make("data")
  for a = 1, n_actors do
    for _, e in ipairs(emotions or { 1, 2, 3, 4, 5, 6, 7, 8 }) do
      for rep = 1, 2 do
        touch(("%s/Actor_%02d/03-01-%02d-01-01-%02d-%02d.wav"):format(dir, a, e, rep, a))
      end
    end
  end
  return dir
end

describe("ser.data names", function()
  it("parses RAVDESS speech and song names", function()
    local i = names.infer("Actor_12/03-01-05-02-01-02-12.wav")
    assert.are.same({ "ravdess", "angry", 12, "strong", "speech", 1, 2, "female" },
      { i.dataset, i.label, i.speaker, i.intensity, i.vocal_channel, i.statement, i.repetition, i.gender })
    local s = names.infer("x/03-02-06-01-02-01-07.flac")
    assert.are.same({ "fearful", 7, "song", "male" }, { s.label, s.speaker, s.vocal_channel, s.gender })
    local bad, why = names.infer("x/03-01-09-01-01-01-01.wav")
    assert.is_nil(bad)
    assert.matches("emotion code 09", why)
  end)
  it("parses CREMA-D, TESS, SAVEE and EMO-DB names", function()
    local c = names.infer("AudioWAV/1001_DFA_ANG_XX.wav")
    assert.are.same({ "crema-d", "angry", 1001, "DFA" }, { c.dataset, c.label, c.speaker, c.sentence })
    assert.are.equal("surprised", names.infer("t/YAF_dog_ps.wav").label)
    local t = names.infer("TESS/OAF_Fear/OAF_back_fear.wav")
    assert.are.same({ "tess", "fearful", "OAF", "back" }, { t.dataset, t.label, t.speaker, t.word })
    local tf = names.infer("TESS/YAF_pleasant_surprised/dog.wav")
    assert.are.same({ "tess", "surprised", "YAF" }, { tf.dataset, tf.label, tf.speaker })
    local sv = names.infer("savee/JK_sa03.wav")
    assert.are.same({ "savee", "sad", "JK", 3 }, { sv.dataset, sv.label, sv.speaker, sv.sentence })
    local sv2 = names.infer("AudioData/DC/su12.wav")
    assert.are.same({ "savee", "surprised", "DC" }, { sv2.dataset, sv2.label, sv2.speaker })
    local e = names.infer("wav/03a01Fa.wav")
    assert.are.same({ "emo-db", "happy", 3, "a01" }, { e.dataset, e.label, e.speaker, e.text })
    assert.are.equal("boredom", names.infer("wav/16b10Lb.wav").label)
    local _, why = names.infer("wav/03a01Xa.wav")
    assert.matches("EMO%-DB emotion letter 'X'", why)
    local _, why2 = names.infer("wav/05a01Wa.wav")
    assert.matches("EMO%-DB speaker 05", why2)
  end)
  it("takes labels from emotion folders", function()
    assert.are.same({ "folder", "angry" }, { names.infer("d/Anger/x1.wav").dataset, names.infer("d/Anger/x1.wav").label })
    local i = names.infer("d/happy/spk7/x.wav")
    assert.are.same({ "happy", "spk7" }, { i.label, i.speaker })
    local f = names.infer("d/positive/x.wav", { label_from = "folder" })
    assert.are.equal("positive", f.label)
    local none, why = names.infer("d/misc/x.wav")
    assert.is_nil(none)
    assert.matches("no known naming scheme", why)
  end)
end)

describe("ser.data.scan", function()
  after_each(tmp.cleanup)
  it("finds audio recursively, case-insensitively, with labels, speakers and skips", function()
    local dir = ravdess_tree(2)
    touch(dir .. "/Actor_01/03-01-03-02-02-02-01.WAV")
    touch(dir .. "/Actor_02/03-01-04-02-02-02-02.Flac")
    touch(dir .. "/README.md")
    touch(dir .. "/Actor_01/03-01-09-01-01-01-01.wav")
    touch(dir .. "/Actor_01/.hidden.wav")
    touch(dir .. "/other/misc.wav")
    local c = assert(data.scan(dir))
    assert.are.equal(2 * 16 + 2, #c.items)
    assert.are.same({ "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }, c.classes)
    assert.are.same({ 1, 2 }, c:speakers())
    assert.are.equal(5, c.counts.class.happy)
    assert.are.equal(17, c.counts.speaker[1])
    for _, it in ipairs(c.items) do assert.are.equal(c.classes[it.y], it.label) end
    local reasons = {}
    for _, s in ipairs(c.skipped) do reasons[s.path:match("[^/]+$")] = s.reason end
    assert.matches("not an audio file", reasons["README.md"])
    assert.matches("emotion code 09", reasons["03-01-09-01-01-01-01.wav"])
    assert.matches("no known naming scheme", reasons["misc.wav"])
    assert.is_nil(reasons[".hidden.wav"])
    local text = c:summary()
    assert.matches("34 items, 8 classes, 2 speakers", text)
    assert.matches("skipped 3 files", text)
  end)
  it("orders classes canonically and keeps only those present", function()
    local dir = tmp.make("data")
    touch(dir .. "/sad/a.wav"); touch(dir .. "/angry/b.wav"); touch(dir .. "/neutral/c.wav")
    local c = assert(data.scan(dir))
    assert.are.same({ "neutral", "sad", "angry" }, c.classes)
    local fixed = assert(data.scan(dir, { classes = { "angry", "sad" } }))
    assert.are.same({ "angry", "sad" }, fixed.classes)
    assert.are.equal(2, #fixed.items)
  end)
  it("filters RAVDESS song files and prefixes speakers of mixed corpora", function()
    local dir = tmp.make("data")
    touch(dir .. "/Actor_03/03-01-01-01-01-01-03.wav")
    touch(dir .. "/Actor_03/03-02-03-01-01-01-03.wav")
    local speech = assert(data.scan(dir, { vocal_channel = "speech" }))
    assert.are.equal(1, #speech.items)
    touch(dir .. "/emodb/03a01Fa.wav")
    warnings = {}
    local mixed = assert(data.scan(dir))
    assert.are.same({ "emo-db:3", "ravdess:3" }, mixed:speakers())
    assert.is_true(warned("several corpora"))
  end)
  it("returns nil and a message for a missing folder, a file, or no labelled audio", function()
    local c, msg = data.scan("/nonexistent/ser-corpus")
    assert.is_nil(c)
    assert.matches("cannot open folder '/nonexistent/ser%-corpus'", msg)
    local f = tmp.make("data") .. "/plain-file"
    touch(f)
    local c2, msg2 = data.scan(f)
    assert.is_nil(c2)
    assert.matches("is not a folder", msg2)
    local dir = tmp.make("data")
    touch(dir .. "/notes.txt")
    local c3, msg3 = data.scan(dir)
    assert.is_nil(c3)
    assert.matches("no labelled audio files", msg3)
    assert.has_error(function() data.scan(dir, { label_from = "nope" }) end)
    assert.has_error(function() data.scan(dir, { bogus = 1 }) end, "scan: unknown option 'bogus' (expected label_from, classes, max_depth, vocal_channel, quiet)")
  end)
  it("reads the shared RAVDESS copy when present", function()
    local c = data.scan("../shared/data/ravdess16k")
    if not c then pending("../shared/data/ravdess16k is absent") return end
    assert.are.equal(1200, #c.items)
    assert.are.equal(20, #c:speakers())
    assert.are.equal(80, c.counts.class.neutral)
    warnings = {}
    local train, val, test = c:split()
    assert.are.same({ 960, 240, 0 }, { #train.items, #val.items, #test.items })
    assert.is_true(warned("test part is empty"))
  end)
end)

describe("ser.data.manifest", function()
  after_each(tmp.cleanup)
  it("reads quoted fields, resolves relative paths and reports missing files", function()
    local dir = tmp.make("data")
    local abs = tmp.make("data-abs") .. "/abs.wav"
    touch(dir .. "/a b/one.wav"); touch(dir .. "/two,x.wav"); touch(abs)
    write(dir .. "/m.csv", 'Path,label,speaker,note\r\n"a b/one.wav",Anger,7,"said ""hi""\nthen left"\n'
      .. '"two,x.wav",sad,spk2,\n' .. abs .. ",neutral,7,x\nmissing.wav,sad,3,\n")
    warnings = {}
    local c = data.manifest(dir .. "/m.csv")
    assert.are.equal(3, #c.items)
    assert.are.equal(dir .. "/a b/one.wav", c.items[1].path)
    assert.are.same({ "angry", 7, 'said "hi"\nthen left' }, { c.items[1].label, c.items[1].speaker, c.items[1].note })
    assert.are.same({ "sad", "spk2" }, { c.items[2].label, c.items[2].speaker })
    assert.are.equal(abs, c.items[3].path)
    assert.are.equal(1, #c.skipped)
    assert.matches("file not found %(manifest line 6%)", c.skipped[1].reason)
    assert.is_true(warned("1 listed files are missing"))
  end)
  it("gives errors with line numbers", function()
    local dir = tmp.make("data")
    local m = dir .. "/m.csv"
    write(m, "file,emotion\nx.wav,sad\n")
    assert.has_error(function() data.manifest(m) end,
      "manifest " .. m .. ":1: the header must name the columns path and label (and speaker); got 'file,emotion'")
    write(m, "path,label,speaker\nx.wav,sad\n")
    assert.has_error(function() data.manifest(m) end,
      "manifest " .. m .. ":2: 2 fields, the header has 3 (path,label,speaker)")
    write(m, 'path,label\n"x.wav,sad\n')
    assert.has_error(function() data.manifest(m) end, "manifest " .. m .. ":2: quoted field is never closed (missing \")")
    write(m, "path,label\nx.wav,\n")
    assert.has_error(function() data.manifest(m) end, "manifest " .. m .. ":2: empty label for x.wav")
    write(m, "")
    assert.has_error(function() data.manifest(m) end, "manifest " .. m .. ": empty file (expected a header path,label,speaker)")
    assert.has_error(function() data.manifest(dir .. "/none.csv") end)
  end)
end)

describe("corpus:split and corpus:folds", function()
  local dir, c
  setup(function()
    dir = ravdess_tree(24)
    c = assert(data.scan(dir))
  end)
  teardown(tmp.cleanup)

  local function speakers_of(part)
    local set = {}
    for _, s in ipairs(part:speakers()) do set[s] = true end
    return set
  end

  it("defaults to RAVDESS actors 1-16 / 17-20 / 21-24 with disjoint speakers", function()
    warnings = {}
    local train, val, test = c:split()
    assert.are.same({ 16 * 16, 4 * 16, 4 * 16 }, { #train.items, #val.items, #test.items })
    assert.are.same({ 17, 18, 19, 20 }, val:speakers())
    assert.are.same(c.classes, test.classes)
    local tr = speakers_of(train)
    for s in pairs(speakers_of(test)) do assert.is_nil(tr[s]) end
    assert.are.equal(0, #warnings)
  end)
  it("accepts explicit lists and functions", function()
    local a, b, t = c:split{ by = "speaker", train = { 1, 3, 5 }, val = { list = { 2, 4 } },
      test = function(s) return s == 24 end }
    assert.are.same({ 1, 3, 5 }, a:speakers())
    assert.are.same({ 2, 4 }, b:speakers())
    assert.are.same({ 24 }, t:speakers())
  end)
  it("refuses overlapping parts", function()
    assert.has_error(function() c:split{ train = { 1, 16 }, val = { 15, 20 } } end,
      "split: speaker 15..16 would be in both train {1..16} and val {15..20}; parts must not share speakers")
    assert.has_error(function() c:split{ train = { 1, 16 }, test = { 3, 21, 22 } } end,
      "split: speaker 3 would be in both train {1..16} and test {3,21,22}; parts must not share speakers")
    assert.has_error(function() c:split{ train = { 16, 1 } } end)
    assert.has_error(function() c:split{ by = "file" } end)
  end)
  it("reports empty parts, missing classes and unassigned speakers without failing", function()
    warnings = {}
    local a, b, t = c:split{ train = { 1, 10 }, val = { 11, 12 }, test = { 30, 31 } }
    assert.are.equal(0, #t.items)
    assert.is_true(warned("test part is empty"))
    assert.is_true(warned("speakers 13,14,15,16,17,18,19,20,21,22,23,24 %(192 items%) are in no part"))
    assert.are.equal(1, #t.warnings)
    local part = c:subset(function(it) return it.label ~= "calm" or it.speaker > 2 end)
    warnings = {}
    part:split{ train = { 3, 24 }, val = { 1, 2 } }
    assert.is_true(warned("val part has no items of class calm"))
    assert.is_true(#a.items > 0 and #b.items > 0)
  end)
  it("refuses speaker splits without speakers and ranges on named speakers", function()
    local nospk = data.corpus({ { path = "a.wav", label = "sad" } })
    assert.has_error(function() nospk:split() end)
    local named = data.corpus({ { path = "a.wav", label = "sad", speaker = "DC" } })
    assert.has_error(function() named:split() end,
      "split: range {1..16} (the default RAVDESS split) needs numeric speakers, but this corpus has speaker 'DC'; give explicit lists")
  end)
  it("makes deterministic speaker folds that cover every speaker once", function()
    local folds = c:folds{ by = "speaker", k = 6 }
    assert.are.equal(6, #folds)
    local seen = {}
    for _, f in ipairs(folds) do
      assert.are.equal(4, #f.speakers)
      local tr = speakers_of(f.train)
      for _, s in ipairs(f.speakers) do
        assert.is_nil(seen[s]); seen[s] = true
        assert.is_nil(tr[s])
      end
      assert.are.equal(#c.items, #f.train.items + #f.val.items)
    end
    assert.are.same({ 1, 2, 3, 4 }, folds[1].speakers)
    assert.are.same(c:folds{ k = 6, seed = 5 }[2].speakers, c:folds{ k = 6, seed = 5 }[2].speakers)
    assert.are_not.same(folds[1].speakers, c:folds{ k = 6, seed = 5 }[1].speakers)
    assert.has_error(function() c:folds{ k = 25 } end,
      "folds: k = 25 folds need at least 25 speakers, the corpus has 24 (1,2,3,4,5,6,7,8,9,10,11,12,... (24 in all))")
    assert.has_error(function() c:folds{ k = 1 } end)
  end)
  it("samples a few items per speaker and class", function()
    local s = c:sample{ per_speaker_class = 1 }
    assert.are.equal(24 * 8, #s.items)
  end)
end)

describe("ser.data.synthetic", function()
  after_each(tmp.cleanup)
  local T = ser.tensor
  local function rms(t) return math.sqrt(numeric.num((t * t):mean())) end

  it("is deterministic for a seed and RAVDESS-shaped", function()
    local a = data.synthetic{ speakers = 4, per_class = 2, classes = 3, seconds = 1.0, seed = 11 }
    local b = data.synthetic{ speakers = 4, per_class = 2, classes = 3, seconds = 1.0, seed = 11 }
    local c = data.synthetic{ speakers = 4, per_class = 2, classes = 3, seconds = 1.0, seed = 12 }
    assert.are.same({ 24, 16000 }, a.audio:shape())
    assert.are.same({ "neutral", "calm", "happy" }, a.classes)
    assert.is_true(a.synthetic)
    assert.are.equal(0, numeric.num((a.audio - b.audio):abs():max()))
    assert.is_true(numeric.num((a.audio - c.audio):abs():max()) > 0.01)
    assert.are.same(names.ravdess(a.items[1].stem).label, a.items[1].label)
    assert.matches("SYNTHETIC", a:summary())
    assert.is_true(numeric.num(a.audio:abs():max()) <= 0.99)
  end)
  it("puts emotion cues into the audio (anger louder than sadness for every speaker)", function()
    local s = data.synthetic{ speakers = 4, per_class = 2, classes = { "sad", "angry" }, seconds = 2.0, seed = 3 }
    for spk = 1, 4 do
      local loud = { sad = 0, angry = 0 }
      for _, it in ipairs(s.items) do
        if it.speaker == spk then loud[it.label] = loud[it.label] + rms(s.audio:select(1, it.row)) end
      end
      assert.is_true(loud.angry > 1.5 * loud.sad, ("speaker %d: angry %.3f sad %.3f"):format(spk, loud.angry, loud.sad))
    end
  end)
  it("is learnable across speakers (a linear probe on pooled log-mel statistics)", function()
    if not (ser.features and ser.nn and ser.optim) then pending("ser.features / ser.nn / ser.optim not built yet") return end
    local T, nn, F = ser.tensor, ser.nn, ser.nn.functional
    ser.manual_seed(1)
    local s = data.synthetic{ speakers = 20, per_class = 2, seed = 1, seconds = 2.0 }
    local tr, va = s:split{ train = { 1, 16 }, val = { 17, 20 }, quiet = true }
    local function pooled(part)
      local b = data.loader(part, { batch = 512, transform = "logmel" }):iter()()
      local n, fr = b.x:shape()[1], b.x:shape()[4]
      local x = b.x:view(n, 64, fr)
      return T.cat({ x:mean(3):view(n, 64), x:std(3):view(n, 64) }, 2), b.y
    end
    local xtr, ytr = pooled(tr)
    local xva, yva = pooled(va)
    local mu, sd = xtr:mean(1), xtr:std(1) + 1e-6
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    local model = nn.Linear(128, 8)
    local opt = ser.optim.AdamW(model:parameters(), { lr = 1e-2, weight_decay = 1e-3 })
    for _ = 1, 300 do
      opt:zero_grad()
      F.cross_entropy(model(xtr), ytr):backward()
      opt:step()
    end
    local pred = ser.no_grad(function() return model(xva) end):argmax(2):totable()
    local y, hit = yva:totable(), 0
    for i = 1, #y do if pred[i] == y[i] then hit = hit + 1 end end
    -- chance is 1/8; unseen speakers 17-20 measured at 0.80 when this test was written
    assert.is_true(hit / #y > 0.5, ("validation accuracy %.3f"):format(hit / #y))
  end)
  it("writes RAVDESS-named files that scan() reads back", function()
    local dir = tmp.make("data")
    local s = data.synthetic{ speakers = 2, per_class = 1, classes = 2, seconds = 0.5, out = dir .. "/syn" }
    assert.is_true(exists(dir .. "/syn/Actor_02/03-01-02-01-01-01-02.wav"))
    local back = assert(data.scan(dir .. "/syn"))
    assert.are.equal(#s.items, #back.items)
    assert.are.same(s.classes, back.classes)
  end)
  it("rejects bad options", function()
    assert.has_error(function() data.synthetic{ classes = 9 } end, "synthetic: classes must be a whole number in 2..8, got 9")
    assert.has_error(function() data.synthetic{ classes = { "angry", "boredom" } } end)
    assert.has_error(function() data.synthetic{ speakers = 0 } end)
    assert.has_error(function() data.synthetic{ seconds = 0 } end)
    assert.has_error(function() data.synthetic{ speaker = 3 } end)
  end)
end)

describe("ser.data.loader", function()
  after_each(tmp.cleanup)
  local T = ser.tensor
  local syn
  setup(function() syn = data.synthetic{ speakers = 3, per_class = 3, classes = 4, seconds = 0.5, seed = 2 } end)

  it("batches every item once per epoch with 1-based labels", function()
    local L = data.loader(syn, { batch = 5, shuffle = true, seed = 9, seconds = 0.5 })
    assert.are.equal(8, #L) -- 36 clips
    local seen, n = {}, 0
    for b in L:iter(1) do
      local s = b.x:shape()
      assert.are.same({ #b.paths, 1, 8000 }, s)
      local ys = b.y:totable()
      for i, k in ipairs(b.index) do
        assert.is_nil(seen[k]); seen[k] = true
        assert.are.equal(syn.items[k].y, ys[i])
        assert.are.equal(syn.items[k].path, b.paths[i])
        -- rows carry that item's audio
        local d = numeric.num((b.x:select(1, i):view(8000) - syn.audio:select(1, syn.items[k].row)):abs():max())
        assert.are.equal(0, d)
      end
      n = n + #b.paths
    end
    assert.are.equal(36, n)
  end)
  it("shuffles deterministically per (seed, epoch) and keeps order when asked", function()
    local function order(L, e)
      local o = {}
      for b in L:iter(e) do for _, k in ipairs(b.index) do o[#o + 1] = k end end
      return o
    end
    local A = data.loader(syn, { batch = 4, shuffle = true, seed = 1, seconds = 0.5 })
    local B = data.loader(syn, { batch = 4, shuffle = true, seed = 1, seconds = 0.5 })
    assert.are.same(order(A, 3), order(B, 3))
    assert.are_not.same(order(A, 3), order(A, 4))
    local C = data.loader(syn, { batch = 4, seconds = 0.5 })
    local o = order(C, 1)
    for i = 1, #o do assert.are.equal(i, o[i]) end
  end)
  it("drops the last short batch when asked", function()
    local L = data.loader(syn, { batch = 10, drop_last = true, seconds = 0.5 })
    assert.are.equal(3, #L)
    local n = 0
    for b in L:iter() do n = n + 1; assert.are.equal(10, #b.paths) end
    assert.are.equal(3, n)
  end)
  it("caches deterministic features and augments per batch otherwise", function()
    local calls = 0
    local tf = function(w) calls = calls + 1; return w * 2 end
    local L = data.loader(syn, { batch = 6, transform = tf, cache = true, seconds = 0.5 })
    for _ = 1, 3 do for _ in L:iter() do end end
    assert.are.equal(1, calls) -- one chunk of 36 clips, computed once for three epochs
    local aug = 0
    local A = data.loader(syn, { batch = 6, augment = function(w) aug = aug + 1; return w end, seconds = 0.5 })
    for _ in A:iter() do end
    for _ in A:iter() do end
    assert.are.equal(12, aug)
  end)
  it("pads or trims to the requested length and rejects bad options", function()
    local L = data.loader(syn, { batch = 2, seconds = 0.75 })
    local b = L:iter()()
    assert.are.same({ 2, 1, 12000 }, b.x:shape())
    assert.are.equal(0, numeric.num(b.x:narrow(3, 8001, 4000):abs():max()))
    assert.has_error(function() data.loader(syn, { batch = 0 }) end, "loader: batch must be a whole number >= 1, got 0")
    assert.has_error(function() data.loader(syn, { transform = "spectrum" }) end)
    assert.has_error(function() data.loader(syn, { augment = 3 }) end)
    assert.has_error(function() data.loader(syn, { bogus = true }) end, "loader: unknown option 'bogus' (expected augment, batch, cache, drop_last, features, name, normalize, prefetch, seconds, seed, shard, shuffle, spec_augment, sr, transform, trim)")
    assert.has_error(function() data.loader(syn, { sr = 8000 }):waveforms() end,
      "loader synthetic: the in-memory corpus is at 16000 Hz but the loader asks for 8000 Hz; create it with sr = 8000")
  end)
  it("handles an empty part", function()
    local empty = syn:subset(function() return false end, "test")
    local L = data.loader(empty, { batch = 4 })
    assert.are.equal(0, #L)
    assert.is_nil(L:iter()())
  end)
  it("names every file that will not decode", function()
    if not (ser.audio and ser.audio.load_many) then pending("ser.audio is not built yet") return end
    local dir = tmp.make("data")
    data.synthetic{ speakers = 2, per_class = 1, classes = 2, seconds = 0.5, out = dir .. "/c" }
    write(dir .. "/c/Actor_01/03-01-01-01-01-01-01.wav", "not audio")
    write(dir .. "/c/Actor_02/03-01-02-01-01-01-02.wav", "")
    local c = assert(data.scan(dir .. "/c"))
    local ok, err = pcall(function() return data.loader(c, { seconds = 0.5 }):iter()() end)
    assert.is_false(ok)
    assert.matches("^loader c: 2 of 4 files did not decode %(fix or remove them%): ", err)
    assert.matches("03%-01%-01%-01%-01%-01%-01%.wav", err)
    assert.matches("03%-01%-02%-01%-01%-01%-02%.wav", err)
  end)
  it("decodes files through ser.audio when it is available", function()
    if not (ser.audio and ser.audio.save and (ser.audio.load_many or ser.audio.load)) then
      pending("ser.audio is not built yet")
      return
    end
    local dir = tmp.make("data")
    local s = data.synthetic{ speakers = 1, per_class = 1, classes = 2, seconds = 0.5, out = dir .. "/c", seed = 4 }
    local back = assert(data.scan(dir .. "/c"))
    local L = data.loader(back, { batch = 2, seconds = 0.5 })
    local b = L:iter()()
    assert.are.same({ 2, 1, 8000 }, b.x:shape())
    local d = numeric.num((b.x:select(1, 1):view(8000) - s.audio:select(1, 1)):abs():max())
    assert.is_true(d < 1e-4, "decoded audio differs by " .. d)
  end)
end)

describe("ser.data.loader background worker", function()
  local core = require "ser.core.data"
  local syn, train
  setup(function()
    syn = data.synthetic{ speakers = 4, per_class = 2, classes = 4, seconds = 1.0, seed = 8 }
    train = syn:subset(function(it) return it.speaker <= 3 end, "train")
  end)
  local function sums(L, epoch, limit)
    local out = {}
    for b in L:iter(epoch) do
      out[#out + 1] = numeric.num(b.x:sum())
      if limit and #out >= limit then break end
    end
    return out
  end
  local aug = { { "gain", lo = 0.7, hi = 1.3 }, { "noise", std = 0.01, p = 0.5 }, { "pitch", semitones = 2, p = 0.5 },
    { "speed", factors = { 0.9, 1.1 }, p = 0.5 }, { "shift", seconds = 0.05, p = 0.5 } }

  it("gives the same batches prefetched and synchronous, new ones each epoch", function()
    if not ser.features then pending("ser.features is not built yet") return end
    local opts = { batch = 4, shuffle = true, seed = 5, seconds = 1.0, transform = "logmel", augment = aug,
      spec_augment = { time_masks = 1, time_width = 10, freq_masks = 1, freq_width = 6 } }
    local A = data.loader(train, opts)
    opts.prefetch = false
    local B = data.loader(train, opts)
    assert.matches("background worker", tostring(A))
    local a1, b1 = sums(A, 1), sums(B, 1)
    assert.are.equal(6, #a1)
    assert.are.same(a1, b1)
    assert.are_not.same(a1, sums(A, 2))
    assert.are.same(a1, sums(A, 1)) -- (seed, epoch) decides, not how often it ran
  end)
  it("survives a loop left early and closing", function()
    if not ser.features then pending("ser.features is not built yet") return end
    local L = data.loader(train, { batch = 2, seconds = 1.0, transform = "mfcc", augment = aug, seed = 1 })
    local first = sums(L, 1, 1)
    assert.are.same(first, sums(L, 1, 1)) -- the batches left behind were drained, not returned
    L:close()
    assert.are.same(first, sums(L, 1, 1)) -- a new worker starts on demand
    L:close()
    L = nil
    collectgarbage()
  end)
  it("masks the features it reports", function()
    if not ser.features then pending("ser.features is not built yet") return end
    local L = data.loader(train, { batch = 24, seconds = 1.0, transform = { kind = "logmel", normalize = false },
      spec_augment = { time_masks = 2, time_width = 20, freq_masks = 0, value = -123 } })
    local x = L:iter()().x:totable()
    local masked_clips = 0
    for _, ex in ipairs(x) do
      local m = ex[1]
      local cols = 0
      for t = 1, #m[1] do
        local all = true
        for f = 1, #m do if m[f][t] ~= -123 then all = false break end end
        if all then cols = cols + 1 end
      end
      assert.is_true(cols <= 40)
      if cols > 0 then masked_clips = masked_clips + 1 end
    end
    assert.is_true(masked_clips >= 12, "only " .. masked_clips .. " of 24 clips were masked")
  end)
  it("computes the same features as ser.features with the same options", function()
    if not ser.features then pending("ser.features is not built yet") return end
    local wav = core.gather(syn.audio, { 1, 2, 3 })
    for _, case in ipairs({ { "logmel", {} }, { "logmel", { n_mels = 40, hop = 160, normalize = false, floor = false } },
      { "mfcc", { n_mfcc = 13 } }, { "logmel", { mel_scale = "slaney", norm = "slaney", top_db = 60 } } }) do
      local kind, fo = case[1], case[2]
      local pf = core.prefetch(syn.audio, { sr = 16000, features = kind, fopts = fo })
      pf:submit({ 1, 2, 3 }, 1)
      local got = pf:next()
      pf:close()
      local want = ser.features[kind](wav, fo)
      assert.are.same(want:shape(), got:shape())
      assert.are.equal(0, numeric.num((want - got):abs():max()), kind)
    end
  end)
  it("computes spec features at the corpus's rate and clip length by default", function()
    if not ser.features then pending("ser.features is not built yet") return end
    local s = data.synthetic{ speakers = 2, per_class = 1, classes = 2, seconds = 1.0, sr = 22050, seed = 3 }
    local want = ser.features.logmel(s.audio, { sr = 22050 })
    local cached = data.loader(s, { batch = 4, transform = "logmel" }):iter()().x
    local worker = data.loader(s, { batch = 4, transform = "logmel", augment = { { "gain", lo = 1, hi = 1 } } }):iter()().x
    assert.are.same(want:shape(), cached:shape())
    assert.are.equal(0, numeric.num((want - cached):abs():max()))
    assert.are.equal(0, numeric.num((want - worker):abs():max()))
  end)
  it("runs a ser.augment chain in the worker, as the equivalent recipe", function()
    if not (ser.features and ser.augment and ser.augment.reference) then pending("ser.augment is not built yet") return end
    local A = ser.augment
    local function run(opts)
      opts.batch, opts.transform, opts.shuffle, opts.seed, opts.seconds = 4, "logmel", true, 4, 1.0
      return sums(data.loader(train, opts), 1)
    end
    local chained = run({ augment = A.reference() })
    assert.are.same(run({ augment = data.reference_augment, spec_augment = data.reference_spec_augment }), chained)
    assert.are_not.same(run({}), chained)
    local custom = A.chain{ A.Gain{ min = 0.5, max = 0.6 }, A.TimeMask{ max_width = 5, count = 2, p = 0.5 } }
    assert.are.same(run({ augment = { { "gain", lo = 0.5, hi = 0.6 } },
      spec_augment = { time_masks = 2, time_width = 5, time_p = 0.5, freq_masks = 0 } }), run({ augment = custom }))
    -- a waveform model takes the chain's waveform stages only
    local W = data.loader(train, { batch = 4, seconds = 1.0, augment = A.reference() })
    assert.are.same({ 4, 1, 16000 }, W:iter()().x:shape())
    assert.has_error(function() data.loader(train, { transform = "logmel", augment = A.reference(), spec_augment = {} }) end,
      "loader: masks come both from the augment chain and from spec_augment; give them once")
    assert.has_error(function() data.loader(train, { augment = A.chain{ A.PitchShift{ sr = 8000 } } }) end,
      "loader: augment chain stage 1 (PitchShift) is set for 8000 Hz but the loader runs at 16000 Hz")
  end)
  it("refuses unknown feature options on the prefetch path as ser.features does", function()
    -- one parser of feature options in C: the worker's names, defaults and checks are ser.features'
    local ok, err = pcall(core.prefetch, syn.audio, { sr = 16000, features = "logmel", fopts = { n_mel = 40 } })
    assert.is_false(ok)
    assert.matches("prefetch: fopts: unknown option 'n_mel' (expected sr, n_fft, hop, n_mels,", tostring(err), 1, true)
    ok, err = pcall(core.prefetch, syn.audio, { sr = 16000, features = "mfcc", fopts = { n_mfcc = 2.5 } })
    assert.is_false(ok)
    assert.matches("prefetch: fopts: option 'n_mfcc' must be an integer, got a fraction", tostring(err), 1, true)
    ok, err = pcall(core.prefetch, syn.audio, { sr = 16000, featurse = "logmel" })
    assert.is_false(ok)
    assert.matches("prefetch: unknown option 'featurse'", tostring(err), 1, true)
    ok, err = pcall(core.prefetch, syn.audio, { sr = 16000, steps = { { kind = "gain", a = 0.9, b = 1.1, hi = 2 } } })
    assert.is_false(ok)
    assert.matches("prefetch: step 1: unknown option 'hi' (expected kind, p, a, b, factors, roll)", tostring(err), 1, true)
    -- through a loader: the augmented (prefetch) path and the plain one fail alike
    local spec = { kind = "logmel", n_mel = 40 }
    local plain_ok, plain_err = pcall(function() return data.loader(train, { transform = spec }):iter()() end)
    local aug_ok, aug_err = pcall(function()
      return data.loader(train, { transform = spec, augment = { { "gain", lo = 0.9, hi = 1.1 } } }):iter()()
    end)
    assert.is_false(plain_ok)
    assert.is_false(aug_ok)
    assert.matches("unknown option 'n_mel'", tostring(plain_err), 1, true)
    assert.matches("unknown option 'n_mel'", tostring(aug_err), 1, true)
  end)
  it("rejects bad recipes with clear messages", function()
    assert.has_error(function() data.loader(train, { augment = { { "echo" } } }) end,
      "loader: augment step 1 kind 'echo' is unknown (gain, noise, pitch, speed, shift)")
    assert.has_error(function() data.loader(train, { augment = { { "gain", lo = 1.2, hi = 0.8 } } }) end,
      "loader: augment step 1 (gain): lo 1.2 > hi 0.8")
    assert.has_error(function() data.loader(train, { augment = { { "pitch", semitones = 20 } } }) end,
      "loader: augment step 1 (pitch): semitones must be a number in 0..12, got 20")
    assert.has_error(function() data.loader(train, { augment = { { "noise", sdt = 1 } } }) end,
      "loader: augment step 1 (noise): unknown field 'sdt' (expected kind, p, snr_db, std)")
    assert.has_error(function() data.loader(train, { spec_augment = { time_masks = 1 } }) end)
    assert.has_error(function() data.loader(train, { transform = "logmel", spec_augment = { widht = 3 } }) end)
    assert.has_error(function() data.loader(train, { augment = aug, cache = true }) end)
    assert.has_error(function() core.prefetch(syn.audio, { features = "cqt" }) end,
      "prefetch: features 'cqt' unknown (waveform, logmel, mfcc)")
    local pf = core.prefetch(syn.audio, { sr = 16000 })
    assert.has_error(function() pf:submit({ 0 }, 1) end)
    assert.has_error(function() pf:next() end, "prefetch: no batch was submitted")
    pf:close()
    assert.has_error(function() pf:submit({ 1 }, 1) end, "prefetch: the worker was closed")
  end)
end)

describe("scripts/fetch-ravdess.sh", function()
  after_each(tmp.cleanup)
  local have = sh("command -v curl >/dev/null && command -v unzip >/dev/null && command -v zip >/dev/null && command -v md5sum >/dev/null")
  local function md5(path)
    local p = io.popen("md5sum '" .. path .. "'")
    local s = p:read("l"):match("^(%x+)")
    p:close()
    return s
  end
  local function fetch(url, sum, dest)
    return sh(("RAVDESS_URL='%s' RAVDESS_MD5='%s' RAVDESS_FILES=4 scripts/fetch-ravdess.sh '%s' >/dev/null 2>&1")
      :format(url, sum, dest))
  end

  it("downloads, verifies and unpacks a local zip atomically; refuses a wrong MD5", function()
    if not have then pending("curl, unzip, zip or md5sum missing") return end
    local dir = tmp.make("data")
    for a = 1, 2 do
      for _, e in ipairs({ 1, 5 }) do touch(("%s/src/Actor_%02d/03-01-%02d-01-01-01-%02d.wav"):format(dir, a, e, a)) end
    end
    assert.is_true(sh(("cd '%s/src' && zip -qr ../corpus.zip Actor_01 Actor_02"):format(dir)))
    local zip = dir .. "/corpus.zip"
    -- a wrong checksum: nothing is unpacked and the bad download is not kept
    assert.is_false(fetch("file://" .. zip, ("0"):rep(32), dir .. "/bad/ravdess"))
    assert.is_false(exists(dir .. "/bad/ravdess/Actor_01/03-01-01-01-01-01-01.wav"))
    assert.is_false(exists(dir .. "/bad/.ravdess-download/corpus.zip.part"))
    -- a resumed download (first 100 bytes already there) with the right checksum
    sh(("mkdir -p '%s/good/.ravdess-download' && head -c 100 '%s' > '%s/good/.ravdess-download/corpus.zip.part'")
      :format(dir, zip, dir))
    assert.is_true(fetch("file://" .. zip, md5(zip), dir .. "/good/ravdess"))
    local c = assert(data.scan(dir .. "/good/ravdess"))
    assert.are.equal(4, #c.items)
    assert.are.same({ "neutral", "angry" }, c.classes)
    assert.is_false(exists(dir .. "/good/.ravdess-download/corpus.zip"))
    -- a second run finds the corpus complete and leaves it alone
    assert.is_true(fetch("file:///nonexistent.zip", md5(zip), dir .. "/good/ravdess"))
    -- the same from Lua
    local c2 = assert(data.fetch_ravdess(dir .. "/lua/ravdess", { url = "file://" .. zip, md5 = md5(zip), files = 4, quiet = true }))
    assert.are.equal(4, #c2.items)
    local none, msg = data.fetch_ravdess(dir .. "/lua2/ravdess", { url = "file://" .. zip, md5 = ("f"):rep(32), files = 4, quiet = true })
    assert.is_nil(none)
    assert.matches("fetch%-ravdess%.sh failed %(fetch%-ravdess: MD5 mismatch .* expected f+; ", msg)
  end)
  it("serves over HTTP from a local server", function()
    if not have or not sh("command -v python3 >/dev/null") then pending("python3/curl missing") return end
    local dir = tmp.make("data")
    for a = 1, 2 do
      for _, e in ipairs({ 2, 3 }) do touch(("%s/src/Actor_%02d/03-01-%02d-01-01-01-%02d.wav"):format(dir, a, e, a)) end
    end
    sh(("cd '%s/src' && zip -qr ../www.zip Actor_01 Actor_02"):format(dir))
    local port = 18000 + os.time() % 2000
    sh(("cd '%s' && (python3 -m http.server %d --bind 127.0.0.1 >/dev/null 2>&1 & echo $! > server.pid)"):format(dir, port))
    local ok = false
    for _ = 1, 50 do
      if sh(("curl -s -o /dev/null http://127.0.0.1:%d/"):format(port)) then ok = true break end
      sh("sleep 0.1")
    end
    local result = ok and fetch(("http://127.0.0.1:%d/www.zip"):format(port), md5(dir .. "/www.zip"), dir .. "/out/ravdess")
    local pid = io.open(dir .. "/server.pid"):read("l")
    sh("kill " .. pid)
    assert.is_true(ok, "local HTTP server did not start")
    assert.is_true(result)
    assert.are.equal(4, #assert(data.scan(dir .. "/out/ravdess")).items)
  end)
end)

describe("ser.data.audio_files", function()
  after_each(tmp.cleanup)

  it("names a file as it is, a folder's audio files sorted (others left), and says why there are none", function()
    local dir = tmp.make("audio_files")
    for _, n in ipairs { "b.wav", "a.wav", "sub/c.flac" } do
      sh("mkdir -p " .. dir .. "/sub")
      assert(ser.audio.save(dir .. "/" .. n, ser.tensor.zeros(160), 16000))
    end
    write(dir .. "/notes.txt", "not audio")
    assert.are.same({ dir .. "/a.wav" }, data.audio_files(dir .. "/a.wav"))
    assert.are.same({ dir .. "/a.wav", dir .. "/b.wav", dir .. "/sub/c.flac" }, data.audio_files(dir))
    local none, why = data.audio_files(dir .. "/notes.txt")
    assert.is_nil(none)
    assert.truthy(why:find("cannot decode", 1, true), why)
    none, why = data.audio_files(dir .. "/missing")
    assert.is_nil(none)
    assert.truthy(why:find("missing", 1, true), why)
    sh("mkdir -p " .. dir .. "/empty")
    none, why = data.audio_files(dir .. "/empty")
    assert.is_nil(none)
    assert.truthy(why:find("no audio files under", 1, true), why)
  end)
end)
