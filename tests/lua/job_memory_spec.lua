-- What the main job keeps between its models (issue 24's memory bound): checking that the
-- whisper recipe can run does not keep the encoder's weights for the whole job, and
-- ser.empty_cache() gives the freed pages of malloc's arenas back to the system.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local ser = require "ser"
local experiment = require "ser.experiment"
local recipe = require "ser.recipe"
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local tmpdir = dofile(here .. "helpers/tmpdir.lua")
local san = dofile(here .. "helpers/sanitized.lua")
-- under make check-asan malloc is ASan's, with no glibc arenas to trim
local it_glibc = san.on and function(name)
  pending(name .. " -- skipped under make check-asan: ASan's allocator replaces glibc malloc; the plain `make test` runs it")
end or it

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local st = f:read("a")
  f:close()
  return tonumber(st:match("VmRSS:%s*(%d+) kB"))
end

local function whisper_recipe(encoder)
  return recipe.resolve({ model = { name = "whisper", encoder = encoder } }, {})
end

describe("the main job's memory between models", function()
  local dir
  setup(function() dir = tmpdir.make("job_memory") end)
  teardown(function() tmpdir.cleanup() end)

  it("checks a whisper recipe's encoder without keeping its weights", function()
    local enc = dir .. "/enc"
    random_whisper(enc, { layers = 4, d_model = 256, heads = 4 })   -- ~3.5 M parameters, 14 MB in fp32
    collectgarbage(); collectgarbage()
    ser.empty_cache()
    local before = ser.memory()
    assert.is_nil(experiment.unavailable(whisper_recipe(enc)))
    collectgarbage(); collectgarbage()
    local after = ser.memory()
    assert.is_true(after - before < 1e6, ("the check kept %d bytes of tensors"):format(after - before))
  end)

  it("says what is missing, and refuses a damaged encoder file with its reason", function()
    local msg = experiment.unavailable(whisper_recipe(dir .. "/no_such_encoder"))
    assert.is_string(msg)
    assert.matches("make whisper-base", msg, 1, true)
    local bad = dir .. "/bad"
    random_whisper(bad, { layers = 1, d_model = 64 })
    local f = assert(io.open(bad .. "/model.safetensors", "r+b"))
    f:seek("set", 8)
    f:write("{not json")
    f:close()
    msg = experiment.unavailable(whisper_recipe(bad))
    assert.is_string(msg)
    assert.matches(bad, msg, 1, true)
  end)

  it("keeps one copy of a cached loader's clips: its features, not also the decoded waveforms", function()
    local syn = ser.data.synthetic{ speakers = 2, per_class = 4, classes = 4, seconds = 2.0, seed = 3 }   -- 32 clips
    for _, spec in ipairs { { kind = "waveform", normalize = true }, "logmel" } do
      local L = ser.data.loader(syn, { batch = 8, transform = spec, cache = true, seconds = 2.0 })
      collectgarbage(); collectgarbage()
      local before = ser.memory()
      local first
      for b in L:iter() do first = first or b.x end
      collectgarbage(); collectgarbage()
      local feats = L:features()
      local kept = ser.memory() - before - 4 * first:numel()   -- less the batch held here
      local bytes = 4 * feats:numel()
      assert.is_true(kept < 1.1 * bytes,
        ("%s: the loader keeps %d bytes for %d bytes of features"):format(tostring(spec.kind or spec), kept, bytes))
      -- and the batches are still those of the features
      assert.are.same(first:totable(), feats:narrow(1, 1, 8):totable())
      -- the waveforms, asked for again, are decoded again: the same clips
      assert.are.same({ 32, 32000 }, L:waveforms():shape())
    end
  end)

  it_glibc("returns the freed pages of malloc's heap with ser.empty_cache()", function()
    -- 100 KB tensors sit in malloc's heap (blocks under 256 KB are not mapped on their own);
    -- keeping every eighth leaves the freed ones as holes free() alone cannot give back
    local keep, all = {}, {}
    for i = 1, 2400 do
      all[i] = ser.tensor.ones(25600)
      if i % 8 == 0 then keep[#keep + 1] = all[i] end
    end
    all = nil
    collectgarbage(); collectgarbage()
    local held = rss_kb()
    ser.empty_cache()
    local trimmed = rss_kb()
    assert.is_true(held - trimmed > 100 * 1024,
      ("RSS went from %d kB to %d kB; ~210 MB of freed holes should have gone back"):format(held, trimmed))
    assert.are.equal(300, #keep)
    assert.are.equal(25600, keep[300]:sum():item())
  end)
end)
