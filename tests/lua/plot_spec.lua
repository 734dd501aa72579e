-- ser.plot: every chart is a valid PNG of the requested size with real content, written
-- atomically; bad input and gnuplot failures give clear errors.
local ser = require "ser"
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")
local plot = ser.plot
local gp = require "ser.plot.gnuplot"

-- Reads a PNG's size and the total bytes of its IDAT (image data) chunks.
local function png_info(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8), path .. " has no PNG signature")
  local pos, w, h, idat, chunks = 9, nil, nil, 0, {}
  while pos + 8 <= #bytes do
    local len, kind = string.unpack(">I4c4", bytes, pos)
    chunks[#chunks + 1] = kind
    if kind == "IHDR" then w, h = string.unpack(">I4I4", bytes, pos + 8) end
    if kind == "IDAT" then idat = idat + len end
    pos = pos + 12 + len
  end
  assert.are.equal("IHDR", chunks[1])
  assert.are.equal("IEND", chunks[#chunks])
  return { width = w, height = h, idat = idat, size = #bytes }
end

-- Not blank: a flat image deflates to a few hundred bytes; charts with text and lines do not.
local function assert_chart(path, w, h, min_idat)
  local info = png_info(path)
  assert.are.same({ w, h }, { info.width, info.height })
  assert.is_true(info.idat > (min_idat or 8000), ("%s: only %d bytes of image data"):format(path, info.idat))
  assert.are.equal("", gp.last_stderr)
end

local classes = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }

describe("ser.plot", function()
  local dir
  setup(function() dir = tmp.make("plot") end)
  teardown(tmp.cleanup)
  local function have() return gp.available() end

  it("draws training curves", function()
    if not have() then pending("gnuplot missing") return end
    local h = {}
    for e = 1, 12 do
      h[e] = { epoch = e, train_loss = 2 / e, val_loss = 2.2 / e + 0.1, train_acc = 1 - 1 / (e + 1),
        val_acc = 0.6 - 0.5 / e, train_f1 = 0.95 - 1 / (e + 1), val_f1 = 0.58 - 0.5 / e, lr = 1e-3, seconds = 3 }
    end
    local out = dir .. "/sub/curves.png"
    assert.are.equal(out, plot.curves(h, { title = "CRNN (log-mel)", out = out }))
    assert_chart(out, 1400, 520)
    -- a history without validation still plots (training-only runs)
    local t = { { epoch = 1, train_loss = 1.5 }, { epoch = 2, train_loss = 1.1 } }
    plot.curves(t, { out = dir .. "/train_only.png", width = 800, height = 400 })
    assert_chart(dir .. "/train_only.png", 800, 400, 3000)
    -- a missing value leaves its column empty, not the later columns shifted: train F1 and
    -- accuracy without any validation still draw (they once failed as "no valid points")
    for _, r in ipairs(t) do r.train_f1, r.train_acc = 0.4 + r.epoch / 10, 0.5 + r.epoch / 10 end
    plot.curves(t, { out = dir .. "/train_only_f1.png", width = 800, height = 400 })
    assert_chart(dir .. "/train_only_f1.png", 800, 400, 3000)
  end)

  it("draws a distilled model's loss on the true labels beside its objective", function()
    if not have() then pending("gnuplot missing") return end
    local h = {}
    for e = 1, 10 do
      h[e] = { epoch = e, train_loss = 3.4 + 1 / e, train_label_loss = 0.9 + 1 / e, val_loss = 1.2 + 1 / e,
        train_f1 = 0.9 - 1 / (e + 2), val_f1 = 0.6 - 1 / (e + 3) }
    end
    local render, script = gp.render, nil
    gp.render = function(name, s, ...) script = s return render(name, s, ...) end
    local ok, err = pcall(plot.curves, h, { out = dir .. "/distilled.png" })
    gp.render = render
    assert(ok, err)
    assert_chart(dir .. "/distilled.png", 1400, 520)
    -- column 8 (the true-label loss) is the solid train line, the objective (column 2) dashed
    assert.truthy(script:find("using 1:8 [^\n]* dt 1 [^\n]*\"train %(true labels%)\""))
    assert.truthy(script:find("using 1:2 [^\n]* dt 2 [^\n]*\"train objective %(with distillation%)\""))
  end)

  it("draws a confusion matrix from a table or a tensor, counts or normalised", function()
    if not have() then pending("gnuplot missing") return end
    local cm = {}
    for i = 1, 8 do
      cm[i] = {}
      for j = 1, 8 do cm[i][j] = i == j and 20 + i or (i * j) % 4 end
    end
    plot.confusion(cm, classes, { title = "CNN2D", out = dir .. "/cm.png" })
    assert_chart(dir .. "/cm.png", 700, 620)
    plot.confusion(ser.tensor.new(cm), classes, { out = dir .. "/cmn.png", normalize = true, width = 900, height = 800 })
    assert_chart(dir .. "/cmn.png", 900, 800)
  end)

  it("draws the model comparison with error bars", function()
    if not have() then pending("gnuplot missing") return end
    local rows = { { model = "cnn2d", accuracy = 0.61, weighted_f1 = 0.6, accuracy_sd = 0.02, weighted_f1_sd = 0.01 },
      { model = "crnn", accuracy = 0.7, weighted_f1 = 0.69 }, { model = "cnn1d", split = "val", accuracy = 0.5, weighted_f1 = 0.47 } }
    plot.comparison(rows, { out = dir .. "/cmp.png" })
    assert_chart(dir .. "/cmp.png", 1000, 560)
    -- more groups (three models and their ensemble, val and test): wider, so that the labels stay apart
    local many = {}
    for _, m in ipairs { "cnn2d", "crnn", "cnn1d", "ensemble" } do
      for _, split in ipairs { "val", "test" } do
        many[#many + 1] = { model = m, split = split, accuracy = 0.6, weighted_f1 = 0.55 }
      end
    end
    plot.comparison(many, { out = dir .. "/cmp8.png" })
    assert_chart(dir .. "/cmp8.png", 1200, 560)
  end)

  it("draws a class-coloured scatter from a tensor", function()
    if not have() then pending("gnuplot missing") return end
    local pts, lab = {}, {}
    for i = 1, 240 do
      local c = i % 8 + 1
      pts[i] = { math.cos(c) * 5 + math.sin(i) , math.sin(c) * 5 + math.cos(i * 1.7) }
      lab[i] = c
    end
    plot.scatter(ser.tensor.new(pts), ser.tensor.new(lab), classes, { title = "UMAP", out = dir .. "/umap.png" })
    assert_chart(dir .. "/umap.png", 1000, 820)
  end)

  it("draws a waveform over its log-mel spectrogram", function()
    if not have() then pending("gnuplot missing") return end
    local s = ser.data.synthetic{ speakers = 1, per_class = 1, classes = 2, seconds = 1.0, seed = 5 }
    local wav = s.audio:select(1, 1)
    local mel
    if ser.features and ser.features.logmel then
      mel = ser.features.logmel(wav)
    else
      mel = {}
      for f = 1, 64 do mel[f] = {} for t = 1, 63 do mel[f][t] = -80 + (f * t) % 50 end end
    end
    plot.waveform_mel(wav, mel, { sr = 16000, hop = 256, out = dir .. "/wm.png" })
    assert_chart(dir .. "/wm.png", 1200, 760)
  end)

  it("draws a learning-rate schedule", function()
    if not have() then pending("gnuplot missing") return end
    local v = {}
    for i = 1, 300 do v[i] = 1e-3 * math.min(i / 30, 1) * (0.5 + 0.5 * math.cos(math.pi * i / 300)) end
    plot.lr(v, { out = dir .. "/lr.png" })
    assert_chart(dir .. "/lr.png", 900, 480, 5000)
  end)

  it("rejects bad input with clear messages", function()
    assert.has_error(function() plot.lr({ 1, 2 }, {}) end, "plot.lr: option out (the PNG path) is required")
    assert.has_error(function() plot.lr({ 1, 2 }, { out = dir .. "/x.svg" }) end,
      "plot.lr: out = '" .. dir .. "/x.svg' must end in .png (the pngcairo terminal writes PNG)")
    assert.has_error(function() plot.lr({ 1, 2 }, { out = dir .. "/x.png", width = 5 }) end,
      "plot.lr: width must be a whole number of pixels in 100..10000, got 5")
    assert.has_error(function() plot.confusion({ { 1, 2 } }, { "a", "b" }, { out = dir .. "/c.png" }) end,
      "plot.confusion: cm has 1 rows but there are 2 classes")
    assert.has_error(function() plot.confusion({ { 1, 2 }, { 3, -1 } }, { "a", "b" }, { out = dir .. "/c.png" }) end,
      "plot.confusion: cm[2][2] = -1 must be a count >= 0")
    assert.has_error(function() plot.scatter({ { 0, 0 } }, { 3 }, { "a", "b" }, { out = dir .. "/s.png" }) end,
      "plot.scatter: label 1 is 3, expected a class index in 1..2")
    assert.has_error(function() plot.scatter({ { 0, 0 } }, { 1, 2 }, { "a", "b" }, { out = dir .. "/s.png" }) end,
      "plot.scatter: 1 points but 2 labels")
    assert.has_error(function() plot.comparison({ { model = "m", accuracy = 62, weighted_f1 = 0.5 } }, { out = dir .. "/m.png" }) end,
      "plot.comparison: rows[1].accuracy = 62 must be a score in 0..1")
    assert.has_error(function() plot.curves({}, { out = dir .. "/h.png" }) end,
      "plot.curves: history must be a non-empty list, got an empty table")
    assert.has_error(function() plot.curves({ { epoch = 1, val_f1 = 0.3 } }, { out = dir .. "/h.png" }) end,
      "plot.curves: history has neither train_loss nor val_loss in any epoch")
  end)

  it("shows gnuplot's message on failure and leaves the old file in place", function()
    if not have() then pending("gnuplot missing") return end
    local out = dir .. "/keep.png"
    plot.lr({ 1, 2, 3 }, { out = out })
    local before = png_info(out).size
    local ok, err = pcall(gp.render, "lr", "plot $missing using 1:2", out, 400, 300)
    assert.is_false(ok)
    assert.matches("plot%.lr: gnuplot failed drawing .*keep%.png", err)
    assert.matches("missing", err)
    assert.are.equal(before, png_info(out).size)
    local p = io.popen("ls '" .. dir .. "' | grep -c tmp")
    assert.are.equal("0", p:read("l"))
    p:close()
  end)

  it("says so when gnuplot is not installed", function()
    local lua = arg and arg[-1] or "lua5.4"
    local cmd = ("cd '%s' && env PATH=/nonexistent LUA_CPATH='%s' %s -e "
      .. "'local ok, e = pcall(require(\"ser\").plot.lr, {1,2}, {out = \"%s/n.png\"}); io.write(tostring(e))' 2>&1")
      :format(os.getenv("PWD") or ".", package.cpath, os.getenv("SER_TEST_LUA") or "/usr/bin/lua5.4", dir)
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.matches("plot%.lr: gnuplot is not installed", out, 1, false, lua)
  end)
end)
