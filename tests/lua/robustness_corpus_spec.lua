-- Bad input catalogue, corpora (issue 6): folders with nothing usable, names nobody can parse,
-- splits that would leak a speaker, empty parts, a class missing from a part, and paths with
-- spaces and non-ASCII characters. Each gets its exact outcome.
local ser = require "ser"
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "robustness_helpers.lua")
local data = ser.data

local wav = H.wav{ frames = 160 }
local function put(root, rel, bytes)
  local p = root .. "/" .. rel
  local d = p:match("^(.*)/[^/]*$")
  assert(H.sh("mkdir -p " .. H.quote(d)))
  return H.write(p, bytes or wav)
end
-- RAVDESS name: emotion code e (1..8), actor a.
local function rav(e, a, rep) return ("03-01-%02d-01-01-%02d-%02d.wav"):format(e, rep or 1, a) end

describe("robustness: corpora", function()
  local warnings
  before_each(function()
    warnings = {}
    data.set_warn(function(m) warnings[#warnings + 1] = m end)
  end)
  teardown(function()
    data.set_warn(function(m) io.stderr:write("ser.data: warning: ", m, "\n") end)
    H.cleanup()
  end)

  it("a folder with no audio: nil and a message listing what was seen", function()
    local d = H.tmpdir("noaudio")
    put(d, "readme.txt", "hello")
    put(d, "notes/list.csv", "a,b")
    local c, msg = data.scan(d)
    assert.is_nil(c)
    assert.are.equal(("scan: no labelled audio files under '%s' (2 files seen, 2 skipped; looked for "
      .. ".aif .aiff .flac .mp3 .ogg .wav); first skip: %s/notes/list.csv (not an audio file (.csv))"):format(d, d), msg)
  end)

  it("a missing folder: nil and the reason", function()
    local c, msg = data.scan("/nonexistent/ser-robust")
    assert.is_nil(c)
    assert.matches("/nonexistent/ser%-robust", msg)
  end)

  it("unknown naming: files are skipped and listed with the reason", function()
    local d = H.tmpdir("naming")
    put(d, rav(5, 1))
    put(d, rav(3, 2))
    put(d, "mystery_take3.wav")
    put(d, "03-01-09-01-01-01-01.wav") -- emotion code 09 does not exist
    local c = assert(data.scan(d))
    assert.are.equal(2, #c.items)
    local reasons = {}
    for _, s in ipairs(c.skipped) do reasons[s.path:match("[^/]+$")] = s.reason end
    assert.are.same({
      ["mystery_take3.wav"] = "no known naming scheme (RAVDESS, CREMA-D, TESS, SAVEE, EMO-DB) and no emotion folder name",
      ["03-01-09-01-01-01-01.wav"] = "RAVDESS emotion code 09 (field 3) is not one of 01..08",
    }, reasons)
    assert.matches("skipped 2 files:", c:summary())
  end)

  it("a speaker in two splits is refused before anything is built", function()
    local d = H.tmpdir("overlap")
    for a = 1, 6 do put(d, rav(1 + a % 2, a)) end
    local c = assert(data.scan(d))
    assert.are.equal("split: speaker 3..4 would be in both train {1..4} and val {3..6}; parts must not share speakers",
      H.err(c.split, c, { train = { 1, 4 }, val = { 3, 6 } }))
    assert.are.equal("split: speaker 5 would be in both val {5} and test {5,6}; parts must not share speakers",
      H.err(c.split, c, { train = { 1, 2 }, val = { list = { 5 } }, test = { list = { 5, 6 } } }))
  end)

  it("an empty split part: the part has no items and a warning says so", function()
    local d = H.tmpdir("empty")
    for a = 1, 4 do put(d, rav(1 + a % 2, a)) end
    local c = assert(data.scan(d))
    local tr, va, te = c:split{ train = { 1, 3 }, val = { 4, 4 }, test = { 21, 24 } }
    assert.are.equal(3, #tr.items)
    assert.are.equal(1, #va.items)
    assert.are.equal(0, #te.items)
    assert.are.same({ ("test part is empty: no items of speakers {21..24} in %s"):format(d) }, te.warnings)
    assert.are.same(("test part is empty: no items of speakers {21..24} in %s"):format(d), warnings[#warnings])
  end)

  it("a class missing from a part: kept in the class list, named in a warning", function()
    local d = H.tmpdir("missingclass")
    put(d, rav(5, 1)); put(d, rav(3, 1)); put(d, rav(5, 2)); put(d, rav(5, 3)); put(d, rav(3, 3))
    local c = assert(data.scan(d))
    local tr, va = c:split{ train = { 1, 1 }, val = { 2, 2 }, test = { 3, 3 } }
    assert.are.same({ "happy", "angry" }, va.classes) -- label indices stay comparable across parts
    assert.are.same(tr.classes, va.classes)
    assert.are.same({ "val part has no items of class happy" }, va.warnings)
  end)

  it("non-ASCII and space-containing paths scan, label and decode", function()
    local d = H.tmpdir("unicode")
    local p1 = put(d, "Schauspieler Ä 01/" .. rav(4, 1))
    local p2 = put(d, "voix d'été/angry/spk 2/take one.wav")
    local c = assert(data.scan(d))
    table.sort(c.items, function(a, b) return a.path < b.path end)
    assert.are.equal(2, #c.items)
    assert.are.equal(p1, c.items[1].path)
    assert.are.equal("sad", c.items[1].label)
    assert.are.equal(p2, c.items[2].path)
    assert.are.equal("angry", c.items[2].label)
    -- two naming schemes in one folder: speakers are prefixed with the scheme (see ser.data.scan)
    assert.are.equal("folder:spk 2", c.items[2].speaker)
    for _, it in ipairs(c.items) do
      local w, msg = ser.audio.load(it.path, { cache = false })
      assert.is_truthy(w, msg)
      assert.are.same({ 160 }, w:shape())
    end
    -- and through a manifest with quoted fields
    local m = H.write(d .. "/list.csv", ('path,label,speaker\n"%s",Sad,"Ä 1"\n'):format(p1))
    local mc = data.manifest(m)
    assert.are.equal("sad", mc.items[1].label)
    assert.are.equal("Ä 1", mc.items[1].speaker)
  end)

  it("a manifest with a malformed row names the line", function()
    local d = H.tmpdir("manifest")
    put(d, "a.wav")
    local m = H.write(d .. "/m.csv", "path,label,speaker\na.wav,angry,1\na.wav,happy\n")
    assert.are.equal(("manifest %s:3: 2 fields, the header has 3 (path,label,speaker)"):format(m), H.err(data.manifest, m))
    H.write(m, "path,label\n\"a.wav,angry\n")
    assert.are.equal(("manifest %s:2: quoted field is never closed (missing \")"):format(m), H.err(data.manifest, m))
  end)
end)
