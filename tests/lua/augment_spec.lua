-- ser.augment from Lua: the reference preset, reproducibility, masks that
-- report what they zeroed, probability 0, chain routing and errors.
local ser = require "ser"
local T = ser.tensor
local A = ser.augment
local numeric = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/numeric.lua")

describe("ser.augment", function()
  ser.manual_seed(1)
  local wav = T.randn(4, 16000) * 0.1

  it("the reference preset keeps shapes and reports per example", function()
    local aug = A.reference()
    assert.is_true(aug.has_spec and aug.has_wave)
    local y, rep = aug(wav)
    assert.are.same({ 4, 16000 }, y:shape())
    assert.are.equal("Gain", rep[1].name)
    for b = 1, 4 do
      local g = rep[1].report[b]
      assert.is_true(g >= 0.8 and g <= 1.2)
      local st = rep[3].report[b]
      assert.is_true(st >= -2 and st <= 2)
    end
    local mel = ser.features.logmel(y)
    local m2, mrep = aug:spec(mel)
    assert.are.same(mel:shape(), m2:shape())
    assert.are.equal("TimeMask", mrep[1].name)
  end)

  it("is reproducible from a generator or from ser.manual_seed", function()
    local a = A.chain{ A.Gain{}, A.Noise{ std = 0.01 }, A.PitchShift{ p = 1 }, A.TimeShift{} }
    ser.manual_seed(7)
    local y1 = a(wav)
    ser.manual_seed(7)
    local y2 = a(wav)
    assert.are.equal(0, numeric.max_abs(y1 - y2))
    local g1, g2 = A.generator(5), A.generator(5)
    local n1 = A.Noise{ std = 0.1, generator = g1 }(wav)
    local n2 = A.Noise{ std = 0.1, generator = g2 }(wav)
    assert.are.equal(0, numeric.max_abs(n1 - n2))
  end)

  it("masks zero exactly the ranges they report", function()
    local spec = T.ones(3, 1, 64, 251)
    local y, rep = A.TimeMask{ max_width = 16, count = 2 }(spec)
    local _, frep
    y, frep = A.FreqMask{ max_width = 8 }(y)
    for b = 1, 3 do
      local m = y:select(1, b):select(1, 1)
      local zeros = 0
      for _, v in ipairs(m:contiguous():view(-1):totable()) do if v == 0 then zeros = zeros + 1 end end
      -- count cells covered by the reported time and frequency ranges
      local tm, fm = {}, {}
      for _, r in ipairs(rep[b]) do for t = r.start, r.start + r.width - 1 do tm[t] = true end end
      for _, r in ipairs(frep[b]) do for f = r.start, r.start + r.width - 1 do fm[f] = true end end
      local want = 0
      for f = 1, 64 do for t = 1, 251 do if fm[f] or tm[t] then want = want + 1 end end end
      assert.are.equal(want, zeros)
      for _, r in ipairs(rep[b]) do
        if r.width > 0 then assert.are.equal(0, numeric.max_abs(m:narrow(2, r.start, r.width))) end
      end
    end
  end)

  it("p = 0 leaves the input unchanged", function()
    local a = A.chain{ A.Gain{ p = 0 }, A.Noise{ p = 0 }, A.PitchShift{ p = 0 }, A.Speed{ p = 0 }, A.TimeShift{ p = 0 } }
    assert.are.equal(0, numeric.max_abs(a(wav) - wav))
  end)

  it("pitch_shift and speed keep the length", function()
    assert.are.same({ 4, 16000 }, A.pitch_shift(wav, 16000, 1.5):shape())
    assert.are.same({ 4, 16000 }, A.Speed{ factors = { 0.9, 1.1 } }(wav):shape())
  end)

  it("errors name the option and the value", function()
    assert.has_error(function() A.Gain{ mn = 1 } end)
    assert.has_error(function() A.Noise{ p = 2 }(wav) end, "augment.noise: p must be in [0, 1], got 2.0")
    assert.has_error(function() A.TimeMask{}(T.zeros(100)) end,
      "augment.mask: expected a spectrogram [F, T], [B, F, T] or [B, 1, F, T], got [100]")
    assert.has_error(function() A.chain{ 42 } end, "augment.chain: stage 1 is not an augment transform (got number)")
  end)
end)
