-- ser.audio.trim: librosa.effects.trim's rule (centred frames with zero padding,
-- frame energy in dB relative to the loudest frame, silent below -top_db),
-- checked against a direct per-frame implementation of that definition and on
-- signals whose answer is known by construction.
local ser = require "ser"
local T = ser.tensor

-- The definition, frame by frame, in plain Lua (librosa 0.10's
-- _signal_to_frame_nonsilent + trim), for one channel.
local function reference_bounds(x, top_db, fl, hop)
  local n, half = #x, fl // 2
  local n_frames = 1 + (n + 2 * half - fl) // hop
  local mse, peak = {}, 0
  for f = 0, n_frames - 1 do
    local s = 0
    for k = f * hop - half, f * hop - half + fl - 1 do
      if k >= 0 and k < n then s = s + x[k + 1] ^ 2 end
    end
    mse[f] = s / fl
    peak = math.max(peak, mse[f])
  end
  local ref = 10 * math.log(math.max(1e-10, peak), 10)
  local first, last
  for f = 0, n_frames - 1 do
    if 10 * math.log(math.max(1e-10, mse[f]), 10) - ref > -top_db then
      first = first or f
      last = f
    end
  end
  if not first then return 0, 0 end
  return math.min(first * hop, n), math.min((last + 1) * hop, n)
end

-- silence (tiny noise) | a 440 Hz burst | silence, with a fixed seed
local function burst(n, a, b, noise)
  local x, g = {}, ser.Generator and ser.Generator(7) or nil
  local r = 12345
  for i = 1, n do
    r = (r * 1103515245 + 12345) % 2147483648
    local v = noise * (r / 2147483648 - 0.5)
    if i > a and i <= b then v = v + 0.5 * math.sin(2 * math.pi * 440 * i / 16000) end
    x[i] = v
  end
  return x
end

describe("ser.audio.trim", function()
  it("keeps the loud part, as librosa's rule defines it", function()
    local x = T.new(burst(16000, 5000, 11000, 1e-3)):totable()   -- the float values
    for _, case in ipairs { { 60, 2048, 512 }, { 30, 400, 160 }, { 20, 1024, 256 }, { 45, 777, 333 } } do
      local top_db, fl, hop = case[1], case[2], case[3]
      local y, first, last = ser.audio.trim(T.new(x), { top_db = top_db, frame_length = fl, hop_length = hop })
      local s, e = reference_bounds(x, top_db, fl, hop)
      assert.are.equal(s + 1, first)
      assert.are.equal(e, last)
      assert.are.same({ e - s }, y:shape())
      assert.are.equal(x[s + 1], y:totable()[1])
      assert.are.equal(x[e], y:totable()[e - s])
    end
  end)

  it("brackets a burst within one hop of its true edges at a tight threshold", function()
    local x = burst(32000, 8000, 20000, 0)      -- digital silence around the burst
    local _, first, last = ser.audio.trim(T.new(x), { top_db = 20, frame_length = 512, hop_length = 128 })
    assert.is_true(math.abs((first - 1) - 8000) <= 512, "start " .. first)
    assert.is_true(math.abs(last - 20000) <= 512, "end " .. last)
  end)

  it("returns a whole loud signal unchanged, and an all-zero one whole as librosa does", function()
    local x = burst(4000, 0, 4000, 0)
    local y, first, last = ser.audio.trim(T.new(x), { top_db = 60 })
    assert.are.equal(1, first)
    assert.are.equal(4000, last)
    assert.are.same({ 4000 }, y:shape())
    -- every frame is 0 dB relative to a zero peak, so none is "silent"
    local z, f0, l0 = ser.audio.trim(T.zeros(1000))
    assert.are.same({ 1000 }, z:shape())
    assert.are.same({ 1, 1000 }, { f0, l0 })
  end)

  it("averages the energy over channels and keeps the channels", function()
    local a, b = burst(16000, 4000, 8000, 0), burst(16000, 9000, 12000, 0)
    local st = T.new { a, b }
    local y, first, last = ser.audio.trim(st, { top_db = 30, frame_length = 512, hop_length = 128 })
    assert.are.same({ 2, last - first + 1 }, y:shape())
    assert.is_true(first - 1 <= 4000 and first - 1 >= 4000 - 512)
    assert.is_true(last >= 12000 and last <= 12000 + 512)
    -- a view (non-contiguous) gives the same answer as its copy
    local wide_a, wide_b = {}, {}
    for i = 1, 16000 do wide_a[i], wide_b[i] = a[i], b[i] end
    wide_a[16001], wide_b[16001] = 9, 9
    local v = T.new { wide_a, wide_b }:narrow(2, 1, 16000)
    assert.is_false(v:is_contiguous())
    local _, f2, l2 = ser.audio.trim(v, { top_db = 30, frame_length = 512, hop_length = 128 })
    assert.are.equal(first, f2)
    assert.are.equal(last, l2)
  end)

  it("refuses bad options and shapes with a message", function()
    local x = T.zeros(100)
    assert.has_error(function() ser.audio.trim(x, { top_db = 0 }) end,
      "audio.trim: top_db must be a finite number > 0, got 0")
    assert.has_error(function() ser.audio.trim(x, { hop_length = 0 }) end)
    assert.has_error(function() ser.audio.trim(x, { frames = 3 }) end)
    assert.has_error(function() ser.audio.trim(T.zeros(2, 2, 2)) end,
      "audio.trim: expected a waveform [T] or [C, T], got [2,2,2]")
  end)
end)
