-- ser.models: structure equal to the PyTorch notebook's modules (keys and
-- shapes checked against tests/lua/helpers/models_ref.py when python3-torch
-- is installed), forward shapes, embed(), and each model overfitting a tiny batch.
local ser = require "ser"
-- Opening ser.core.audio pins ser.so (RTLD_NODELETE): without that, lua5.4's
-- dlclose at exit unmaps the code of live OpenMP worker threads (segfault).
-- The pin belongs in luaopen_ser; until the lead moves it there, this does it.
require "ser.core.audio"
local T, F = ser.tensor, ser.nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")

-- A model written by ser.train.save_checkpoint and read back by ser.models.load.
local EIGHT = { "a", "b", "c", "d", "e", "f", "g", "h" }
local function through_checkpoint(model, name)
  local path = tmp.make("models") .. "/model.safetensors"
  ser.train.save_checkpoint(path, model, EIGHT, { name = name }, 1)
  local back, meta = ser.models.load(path)
  assert.is_truthy(back, meta)
  return back, meta
end

local torch_python = dofile(here .. "helpers/torch_python.lua")

local function keys_and_shapes(model)
  local out = {}
  for _, k in ipairs(model:state_dict_keys()) do
    local t = model:state_dict()[k]
    local s = table.concat(t:shape(), "x")
    if k:match("num_batches_tracked$") then s = "1" end   -- PyTorch: 0-d int64
    out[#out + 1] = k .. " " .. s
  end
  return out
end

describe("ser.models", function()
  after_each(tmp.cleanup)
  local py = torch_python()
  local it_torch = py and it or pending

  it_torch("have exactly the PyTorch state_dict keys and shapes, in order", function()
    local p = assert(io.popen(py .. " " .. here .. "helpers/models_ref.py 8 16"))
    local ref = { cnn2d = {}, crnn = {}, cnn1d = {} }
    for line in p:lines() do
      local name, rest = line:match("^(%S+) (.*)$")
      table.insert(ref[name], rest)
    end
    assert.is_true(p:close())
    assert.are.same(ref.cnn2d, keys_and_shapes(ser.models.CNN2D{ classes = 8 }))
    assert.are.same(ref.crnn, keys_and_shapes(ser.models.CRNN{ classes = 8, hidden = 16 }))
    assert.are.same(ref.cnn1d, keys_and_shapes(ser.models.CNN1D{ classes = 8 }))
    assert.are.equal(32, #ref.cnn2d)
  end)

  it("use the issue's architecture (spot checks that need no PyTorch)", function()
    local sd = ser.models.CRNN{ classes = 8 }:state_dict()
    assert.are.same({ 512, 128 }, sd["rnn.weight_ih_l0_reverse"]:shape())
    assert.are.same({ 8, 256 }, sd["head.0.weight"]:shape())
    assert.are.same({ 64, 32, 3, 3 }, sd["cnn.3.weight"]:shape())
    sd = ser.models.CNN2D{ classes = 5 }:state_dict()
    assert.are.same({ 256, 128, 3, 3 }, sd["features.12.weight"]:shape())
    assert.are.same({ 5, 128 }, sd["classifier.5.weight"]:shape())
    assert.is_not_nil(sd["features.1.running_mean"])
    sd = ser.models.CNN1D{ classes = 8 }:state_dict()
    assert.are.same({ 32, 1, 9 }, sd["net.0.weight"]:shape())
    assert.are.same({ 256 }, sd["net.10.running_var"]:shape())
    assert.are.same({ 8, 256 }, sd["fc.2.weight"]:shape())
  end)

  it("build CRNN's optional BatchNorm and dropout, and load them back from a checkpoint", function()
    local m = ser.models.CRNN{ classes = 8, batchnorm = true, dropout = 0.3 }
    local sd = m:state_dict()
    -- the notebook's convolutions keep their names (cnn.0/3/6); the BatchNorms sit beside them
    assert.are.same({ 32 }, sd["cnn_bn.0.running_mean"]:shape())
    assert.are.same({ 64, 32, 3, 3 }, sd["cnn.3.weight"]:shape())
    assert.are.same({ 128, 64, 3, 3 }, sd["cnn.6.weight"]:shape())
    assert.are.same({ 128 }, sd["cnn_bn.2.weight"]:shape())
    local plain = ser.models.CRNN{ classes = 8 }:state_dict()
    for k in pairs(plain) do assert.is_not_nil(sd[k], k) end
    assert.is_nil(plain["cnn_bn.0.weight"])
    local back, meta = through_checkpoint(m, "crnn")
    assert.is_true(meta.batchnorm)
    assert.are.equal(0.3, meta.dropout)
    assert.is_true(back.batchnorm)
    assert.are.equal(0.3, back.dropout)
    local ok_err = { pcall(ser.models.CRNN, { classes = 8, dropout = 1 }) }
    assert.is_false(ok_err[1])
    assert.matches("dropout must be a probability in [0, 1), got 1", ok_err[2], 1, true)
  end)

  it("build CRNN's dropout on the BiLSTM's input (feature_dropout), active only in training", function()
    ser.manual_seed(6)
    local m = ser.models.CRNN{ classes = 8, hidden = 8, freq = "flatten", feature_dropout = 0.5 }
    assert.are.equal(0.5, m.feature_drop.p)
    -- no parameters: the state_dict names (and shapes) are those of the model without it
    assert.are.same(keys_and_shapes(ser.models.CRNN{ classes = 8, hidden = 8, freq = "flatten" }), keys_and_shapes(m))
    local xin = T.randn(2, 1, 64, 24)
    m:eval()
    local eval_out = m(xin):totable()
    assert.are.same(eval_out, m(xin):totable())
    m:train()
    assert.are_not.same(eval_out, m(xin):totable())   -- half the BiLSTM's inputs dropped
    local back, meta = through_checkpoint(m, "crnn")
    assert.are.equal(0.5, meta.feature_dropout)
    assert.are.equal(0.5, back.feature_dropout)
    -- it sits on the BiLSTM's input: with (nearly) every feature dropped the BiLSTM reads
    -- zeros at its 24 / 8 = 3 steps (seeded, so no rare survivor makes this flaky)
    m = ser.models.CRNN{ classes = 8, hidden = 8, freq = "flatten", feature_dropout = 0.999999 }
    local got = m(xin):totable()
    local want = m.head(m.rnn(T.zeros(2, 3, 128 * 8)):mean(2)):totable()
    for b = 1, 2 do
      for c = 1, 8 do assert.is_near(want[b][c], got[b][c], 1e-6) end
    end
    local ok_err = { pcall(ser.models.CRNN, { classes = 8, feature_dropout = -0.1 }) }
    assert.is_false(ok_err[1])
    assert.matches("feature_dropout must be a probability in [0, 1), got -0.1", ok_err[2], 1, true)
  end)

  it("build CNN2D's frequency-band pooling (freq = \"flatten\") and load it back", function()
    ser.manual_seed(4)
    local m = ser.models.CNN2D{ classes = 8, freq = "flatten" }
    assert.are.same({ 128, 256 * 8 }, m:state_dict()["classifier.2.weight"]:shape())
    m:eval()
    local x = T.randn(2, 1, 64, 40)
    -- the last block averages over time only: 8 bands of 256 channels, channel-major as in PyTorch
    local h = m.features(x)
    assert.are.same({ 2, 256, 8, 1 }, h:shape())
    local back, meta = through_checkpoint(m, "cnn2d")
    assert.are.equal("flatten", meta.freq)
    assert.are.same(m(x):totable(), back(x):totable())
    assert.is_nil(ser.models.CNN2D{ classes = 8 }.freq)
    local ok, err = pcall(ser.models.CNN2D, { classes = 8, freq = "bands" })
    assert.is_false(ok)
    assert.matches('CNN2D: freq must be "mean" or "flatten", got bands', err, 1, true)
  end)

  -- mean and sqrt(population var + 1e-5) of each row of a [C][T] table, against emb[c] / emb[C + c]
  local function assert_stats(rows, emb, C)
    for c = 1, C do
      local n, sum, sq = #rows[c], 0, 0
      for t = 1, n do sum = sum + rows[c][t]; sq = sq + rows[c][t] ^ 2 end
      local mean = sum / n
      assert.is_near(mean, emb[c], 1e-5 * (1 + math.abs(mean)))
      assert.is_near(math.sqrt(math.max(0, sq / n - mean * mean) + 1e-5), emb[C + c], 1e-4)
    end
  end

  it("build CNN1D's statistics pooling over time (time = \"stats\") and load it back", function()
    ser.manual_seed(6)
    local m = ser.models.CNN1D{ classes = 8, time = "stats" }
    assert.are.same({ 8, 512 }, m:state_dict()["fc.2.weight"]:shape())
    assert.are.same(ser.models.CNN1D{ classes = 8 }:state_dict_keys(), m:state_dict_keys())   -- the notebook's names
    m:eval()
    local x = T.randn(2, 1, 800)
    local h = m.net(x):totable()   -- [2,256,50]: the last block, time kept
    local e = m:embed(x):totable()
    for b = 1, 2 do assert_stats(h[b], e[b], 256) end
    local back, meta = through_checkpoint(m, "cnn1d")
    assert.are.equal("stats", meta.time)
    assert.are.same(m(x):totable(), back(x):totable())
    assert.is_nil(ser.models.CNN1D{ classes = 8 }.time)
    local ok, err = pcall(ser.models.CNN1D, { classes = 8, time = "max" })
    assert.is_false(ok)
    assert.matches('CNN1D: time must be "mean" or "stats", got max', err, 1, true)
  end)

  it("build CNN1D's context blocks (context_blocks = N) and load them back", function()
    ser.manual_seed(9)
    local m = ser.models.CNN1D{ classes = 8, context_blocks = 2 }
    local plain = ser.models.CNN1D{ classes = 8 }
    -- the notebook's parameters keep their names; each block adds a convolution and a BatchNorm
    local sd = m:state_dict()
    for _, k in ipairs(plain:state_dict_keys()) do assert.are.same(plain:state_dict()[k]:shape(), sd[k]:shape(), k) end
    assert.are.same({ 256, 256, 9 }, sd["net.13.weight"]:shape())
    assert.are.same({ 256 }, sd["net.18.running_var"]:shape())
    assert.is_nil(sd["net.21.weight"])
    m:eval()
    -- 2000 samples: 125 steps after the convolutions, 31 after the first pool, 7 after the second
    local x = T.randn(2, 1, 2000)
    local y = x
    for i = 1, 20 do y = m.net:get(i)(y) end   -- up to the second block's ReLU, before the global pool
    assert.are.equal("AdaptiveAvgPool1d", m.net:get(21).__name)
    assert.are.same({ 2, 256, 7 }, y:shape())
    local back, meta = through_checkpoint(m, "cnn1d")
    assert.are.equal(2, meta.context_blocks)
    assert.are.same(m(x):totable(), back(x):totable())
    assert.is_nil(plain.context_blocks)
    assert.is_nil(ser.models.CNN1D{ classes = 8, context_blocks = 0 }.context_blocks)
    -- the shortest input the pools take: ceil(N / 16) >= 16 steps
    assert.are.same({ 1, 8 }, m(T.randn(1, 1, 241)):shape())
    local ok, err = pcall(m, T.randn(1, 1, 240))
    assert.is_false(ok)
    assert.matches("CNN1D: 2 context blocks need at least 241 samples of waveform, got 240", err, 1, true)
    for _, bad in ipairs { -1, 1.5, "2", math.huge } do
      ok, err = pcall(ser.models.CNN1D, { classes = 8, context_blocks = bad })
      assert.is_false(ok)
      assert.matches("CNN1D: context_blocks must be a whole number >= 0, got " .. tostring(bad), err, 1, true)
    end
  end)

  it("build CNN1D's filterbank front end (frontend = \"filterbank\") and load it back", function()
    ser.manual_seed(10)
    local m = ser.models.CNN1D{ classes = 8, frontend = "filterbank" }
    local sd = m:state_dict()
    assert.are.same({ 64, 1, 257 }, sd["net.0.weight"]:shape())
    assert.are.same({ 64 }, sd["net.4.running_mean"]:shape())
    assert.are.same({ 256, 256, 9 }, sd["net.14.weight"]:shape())
    assert.are.same({ 8, 256 }, sd["fc.2.weight"]:shape())
    -- the initial filters are band-passes at rising mel-spaced frequencies: each has unit
    -- energy, and the frequency of its largest response (a 2048-point DFT) rises band by band
    local w = sd["net.0.weight"]:totable()
    local last = -1
    for band = 1, 64 do
      local taps, energy = w[band][1], 0
      for _, v in ipairs(taps) do energy = energy + v * v end
      assert(math.abs(energy - 1) < 1e-4, ("band %d has energy %g"):format(band, energy))
      local best, at = -1, 0
      for k = 0, 1023, 2 do
        local re, im = 0, 0
        for t, v in ipairs(taps) do
          re, im = re + v * math.cos(2 * math.pi * k * t / 2048), im + v * math.sin(2 * math.pi * k * t / 2048)
        end
        if re * re + im * im > best then best, at = re * re + im * im, k * 16000 / 2048 end
      end
      assert(at >= last, ("band %d peaks at %g Hz, below band %d's %g Hz"):format(band, at, band - 1, last))
      last = at
    end
    assert(last > 6000, "the top band peaks at " .. last .. " Hz")
    -- 2000 samples: 1000 after the filters' stride, 12 frames of 10 ms, the four convolutions then halve them
    m:eval()
    local x = T.randn(2, 1, 2000)
    local y = x
    for i = 1, 4 do y = m.net:get(i)(y) end
    assert.are.same({ 2, 64, 12 }, y:shape())
    local logs = y:totable()
    local back, meta = through_checkpoint(m, "cnn1d")
    assert.are.equal("filterbank", meta.frontend)
    assert.are.same(m(x):totable(), back(x):totable())
    assert(logs[1][1][1] == logs[1][1][1] and math.abs(logs[1][1][1]) < 100, "log energies are finite")
    assert.is_nil(ser.models.CNN1D{ classes = 8 }.frontend)
    assert.is_nil(ser.models.CNN1D{ classes = 8, frontend = "conv" }.frontend)
    -- the shortest input: one frame after the stride
    assert.are.same({ 1, 8 }, m(T.randn(1, 1, 159)):shape())
    local ok, err = pcall(m, T.randn(1, 1, 158))
    assert.is_false(ok)
    assert.matches("the filterbank front end needs at least 159 samples of waveform (one 10 ms frame), got 158", err, 1, true)
    ok, err = pcall(ser.models.CNN1D, { classes = 8, frontend = "sinc" })
    assert.is_false(ok)
    assert.matches('CNN1D: frontend must be "conv" or "filterbank", got sinc', err, 1, true)
    ok, err = pcall(ser.models.CNN1D, { classes = 8, frontend = "filterbank", context_blocks = 1 })
    assert.is_false(ok)
    assert.matches("use one or the other", err, 1, true)
  end)

  it("build CNN2D's statistics pooling over time, with and without frequency bands, and load it back", function()
    ser.manual_seed(7)
    for _, freq in ipairs { "flatten", "mean" } do
      local m = ser.models.CNN2D{ classes = 8, freq = freq, time = "stats" }
      local bands = freq == "flatten" and 8 or 1
      assert.are.same({ 128, 2 * 256 * bands }, m:state_dict()["classifier.2.weight"]:shape())
      assert.are.same(ser.models.CNN2D{ classes = 8 }:state_dict_keys(), m:state_dict_keys())
      m:eval()
      local x = T.randn(2, 1, 64, 40)
      local h = m.features(x):totable()   -- [2,256,8,5]: the last block's ReLU, nothing pooled yet
      assert.are.equal(8, #h[1][1])
      -- PyTorch's flatten of [B, 512, bands]: channel-major, the means' 256 channels first
      local e = m.classifier:get(1)(m:pooled(x)):totable()
      for b = 1, 2 do
        for band = 1, bands do
          local rows, emb = {}, {}
          for c = 1, 256 do
            local row = {}
            for t = 1, #h[b][c][1] do   -- the band's mean over its 8 / bands frequency rows
              local s = 0
              for f = (band - 1) * (8 // bands) + 1, band * (8 // bands) do s = s + h[b][c][f][t] end
              row[t] = s / (8 // bands)
            end
            rows[c] = row
            emb[c], emb[256 + c] = e[b][(c - 1) * bands + band], e[b][(256 + c - 1) * bands + band]
          end
          assert_stats(rows, emb, 256)
        end
      end
      local back, meta = through_checkpoint(m, "cnn2d")
      assert.are.equal("stats", meta.time)
      assert.are.same(m(x):totable(), back(x):totable())
    end
    local ok, err = pcall(ser.models.CNN2D, { classes = 8, time = "last" })
    assert.is_false(ok)
    assert.matches('CNN2D: time must be "mean" or "stats", got last', err, 1, true)
  end)

  it("build CRNN's flattened-frequency input and statistics pooling, and load them back", function()
    ser.manual_seed(3)
    local m = ser.models.CRNN{ classes = 8, hidden = 16, freq = "flatten", time = "stats" }
    local sd = m:state_dict()
    assert.are.same({ 64, 128 * 8 }, sd["rnn.weight_ih_l0"]:shape())   -- 4H x (channels x mels/8)
    assert.are.same({ 8, 4 * 16 }, sd["head.0.weight"]:shape())          -- mean and std of 2H outputs
    m:eval()
    local x = T.randn(2, 1, 64, 40)
    -- the BiLSTM steps are PyTorch's f.permute(0, 3, 1, 2).reshape(B, T, C * F)
    local f = m.cnn(x)
    local s = f:shape()
    local steps = T.new(f:permute(1, 4, 2, 3):totable()):reshape{ s[1], s[4], s[2] * s[3] }
    local out = m.rnn(steps):totable()
    local e = m:embed(x):totable()
    for b = 1, 2 do
      for j = 1, 32 do
        local sum, sq = 0, 0
        for t = 1, s[4] do sum = sum + out[b][t][j]; sq = sq + out[b][t][j] ^ 2 end
        local mean = sum / s[4]
        assert.is_near(mean, e[b][j], 1e-5)
        assert.is_near(math.sqrt(math.max(0, sq / s[4] - mean * mean) + 1e-5), e[b][32 + j], 1e-4)
      end
    end
    local back, meta = through_checkpoint(m, "crnn")
    assert.are.equal("flatten", meta.freq)
    assert.are.equal("stats", meta.time)
    assert.are.same(m(x):totable(), back(x):totable())
    -- the notebook's CRNN records neither
    assert.is_nil(ser.models.CRNN{ classes = 8 }.freq)
    local ok, err = pcall(ser.models.CRNN, { classes = 8, freq = "max" })
    assert.is_false(ok)
    assert.matches('freq must be "mean" or "flatten", got max', err, 1, true)
    ok, err = pcall(ser.models.CRNN, { classes = 8, time = "last" })
    assert.matches('time must be "mean" or "stats", got last', err, 1, true)
    ok, err = pcall(ser.models.CRNN, { classes = 8, freq = "flatten", mels = 60 })
    assert.matches("needs mels, a multiple of 8, got 60", err, 1, true)
    ok, err = pcall(m, T.randn(1, 1, 66, 40))   -- pools to the same 8 rows, yet not what it was built for
    assert.matches("built for [B,1,64,T] log-mels", err, 1, true)
    assert.matches("got [1,1,66,40]", err, 1, true)
    -- a checkpoint whose metadata names an unknown option value is reported, not raised
    local path = tmp.make("models") .. "/bands.safetensors"
    assert(ser.save(path, m:state_dict(), { model = "crnn", classes = EIGHT, freq = "bands" }))
    local none, msg = ser.models.load(path)
    assert.is_nil(none)
    assert.matches('metadata describes no buildable model: .*freq must be "mean" or "flatten", got bands', msg)
  end)

  it("reject a bad class count and unknown names clearly", function()
    local ok, err = pcall(ser.models.CNN2D, { classes = 1 })
    assert.is_false(ok)
    assert.matches("classes must be a whole number >= 2, got 1", err)
    ok, err = pcall(ser.models.create, "resnet", { classes = 8 })
    assert.matches("unknown model 'resnet'", err)
    assert.are.equal("CRNN", ser.models.create("crnn", { classes = 4 }).__name)
  end)

  local ready = pcall(require, "ser.core.nn_cnn") and pcall(require, "ser.core.nn_rnn") and ser.optim ~= nil
  local it_run = ready and it or pending

  it_run("give logits and embeddings of the right shapes", function()
    ser.manual_seed(1)
    local x = T.randn(2, 1, 64, 40)
    local m = ser.models.CNN2D{ classes = 8 }
    assert.are.same({ 2, 8 }, m(x):shape())
    assert.are.same({ 2, 128 }, m:embed(x):shape())
    m = ser.models.CRNN{ classes = 8, hidden = 16 }
    assert.are.same({ 2, 8 }, m(x):shape())
    assert.are.same({ 2, 32 }, m:embed(x):shape())
    m = ser.models.CRNN{ classes = 8, hidden = 16, batchnorm = true, dropout = 0.3 }
    assert.are.same({ 2, 8 }, m(x):shape())
    m:eval()   -- dropout off: the same logits twice
    assert.are.same(m(x):totable(), m(x):totable())
    m = ser.models.CNN1D{ classes = 8 }
    local w = T.randn(2, 1, 800)
    assert.are.same({ 2, 8 }, m(w):shape())
    assert.are.same({ 2, 256 }, m:embed(w):shape())
  end)

  -- A tiny batch with random labels can only be fitted by memorising it:
  -- the loss must fall close to zero.
  local function overfit(model, x, steps, lr)
    local y = T.new{ 1, 2, 3, 4, 5, 6, 7, 8 }
    local opt = ser.optim.AdamW(model:parameters(), { lr = lr, weight_decay = 0 })
    local first, last
    for i = 1, steps do
      opt:zero_grad()
      local loss = F.cross_entropy(model(x), y)
      loss:backward()
      opt:step()
      last = loss:item()
      first = first or last
      if last < 0.02 then break end
    end
    model:eval()
    local pred = ser.train.argmax_rows(model(x):totable())
    return first, last, pred
  end

  for _, case in ipairs {
    { "CNN2D", function() return ser.models.CNN2D{ classes = 8 } end, { 8, 1, 16, 16 }, 3e-3 },
    { "CRNN", function() return ser.models.CRNN{ classes = 8, hidden = 32 } end, { 8, 1, 16, 16 }, 3e-3 },
    { "CRNN (batchnorm)", function() return ser.models.CRNN{ classes = 8, hidden = 32, batchnorm = true } end,
      { 8, 1, 16, 16 }, 3e-3 },
    { "CNN2D (flatten)", function() return ser.models.CNN2D{ classes = 8, freq = "flatten" } end, { 8, 1, 16, 16 }, 3e-3 },
    { "CRNN (flatten, stats)", function() return ser.models.CRNN{ classes = 8, hidden = 32, freq = "flatten", time = "stats",
      mels = 16 } end, { 8, 1, 16, 16 }, 3e-3 },
    { "CNN1D", function() return ser.models.CNN1D{ classes = 8 } end, { 8, 1, 400 }, 3e-3 },
    { "CNN2D (flatten, stats)", function() return ser.models.CNN2D{ classes = 8, freq = "flatten", time = "stats" } end,
      { 8, 1, 64, 16 }, 3e-3 },
    { "CNN1D (stats)", function() return ser.models.CNN1D{ classes = 8, time = "stats" } end, { 8, 1, 400 }, 3e-3 },
    { "CNN1D (context blocks)", function() return ser.models.CNN1D{ classes = 8, context_blocks = 2 } end,
      { 8, 1, 400 }, 3e-3 },
  } do
    it_run(case[1] .. " overfits a tiny batch", function()
      ser.manual_seed(5)
      local model = case[2]()
      local x = T.randn(case[3])
      local first, last, pred = overfit(model, x, 300, case[4])
      assert.is_true(first > 1.5, ("initial loss %.3f should be near log(8)"):format(first))
      assert.is_true(last < 0.05, ("loss went from %.3f to %.4f only"):format(first, last))
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, pred)
    end)
  end
end)
