-- Resumable training (ser.train.state, fit's state/resume options, docs/train.md "Resuming"):
-- a run interrupted after epoch k and resumed ends bit for bit where the uninterrupted run ends
-- (one process, the same thread count); finished runs are not retrained; a state of another run
-- or a damaged file is refused with a message. The mpirun cases are in dist_spec.lua, the
-- compare.lua kill-and-rerun case at the end of this file.
local ser = require "ser"
local T = ser.tensor
local tmp = dofile("tests/lua/helpers/tmpdir.lua")
local numeric = dofile("tests/lua/helpers/numeric.lua")
local paths = dofile("tests/lua/helpers/paths.lua")
local build, serlua = paths.build, paths.serlua

-- A tiny corpus (4 classes, 3 speakers, 2 clips each, 0.5 s) and a model, from one seed, so
-- that every call builds the same starting point.
local function setup(kind, with_val)
  ser.manual_seed(11)
  local corpus = ser.data.synthetic{ speakers = 3, per_class = 2, classes = 4, seconds = 0.5, seed = 5 }
  local train, val = corpus:split{ by = "speaker", train = { 1, 2 }, val = { 3, 3 }, quiet = true }
  local model = ser.models.create(kind, { classes = #corpus.classes })
  return model, { train, with_val and val or nil }
end

-- Augmentation (the C worker's waveform steps and SpecAugment masks), mixup and dropout (the
-- global generator), EMA and OneCycle: everything a resume has to restore.
local function opts(extra)
  local o = { epochs = 4, batch = 4, seed = 3, augment = "reference", seconds = 0.5, progress = "quiet", ema = 0.9,
              mixup = 0.2, patience = 100 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- The largest |a - b| over two models' state_dicts.
local function maxdiff(a, b)
  local w, sb = 0, b:state_dict()
  for k, t in pairs(a:state_dict()) do
    local d = numeric.max_abs_diff(t, sb[k])
    if not (d <= w) then w = d end -- math.max would drop a NaN
  end
  return w
end

-- Makes the model raise at its n-th training forward: an interruption inside an epoch.
local function fail_at(model, n)
  local calls, forward = 0, model.forward
  model.forward = function(self, x)
    if self.training then
      calls = calls + 1
      if calls == n then error("injected interruption") end
    end
    return forward(self, x)
  end
end

local function history_equal(h1, h2)
  assert.are.equal(#h1, #h2)
  for i, row in ipairs(h1) do
    for _, k in ipairs { "epoch", "train_loss", "train_acc", "train_f1", "lr", "val_loss", "val_acc", "val_f1" } do
      assert.are.equal(row[k], h2[i][k], ("history epoch %d, %s"):format(i, k))
    end
  end
end

describe("the random generator's state", function()
  it("round-trips: draws after set_rng_state repeat the draws after get_rng_state", function()
    ser.manual_seed(5)
    T.randn(3)   -- leaves a spare normal cached: the state includes it
    local s = ser.get_rng_state()
    local a = T.randn(7):totable()
    T.rand(100)
    ser.set_rng_state(s)
    assert.are.same(a, T.randn(7):totable())
  end)

  it("refuses what is not a generator state, with the reason", function()
    assert.has_error(function() ser.set_rng_state({ 1, 2, 3 }) end,
      "set_rng_state: expected a list of 6 whole numbers (from get_rng_state), got 3 entries")
    assert.has_error(function() ser.set_rng_state({ 1, 2, 3, 4, 0, 0 }) end,
      "set_rng_state: rng state: the increment (words 3-4) is even (4); a PCG32 increment is odd")
    assert.has_error(function() ser.set_rng_state({ 1, 2, 3, 5, 2, 0 }) end,
      "set_rng_state: rng state: has_spare (word 5) is 2; expected 0 or 1")
    assert.has_error(function() ser.set_rng_state({ 1, 2, 3, 5, 0, -1 }) end,
      "set_rng_state: entry 6 is not a whole number in 0..4294967295")
  end)
end)

describe("ser.train.fit with a training state", function()
  local dir
  before_each(function() dir = tmp.make("resume") end)
  after_each(tmp.cleanup)

  for _, kind in ipairs { "crnn", "cnn2d" } do
    it(("resumed after an interruption, ends with the uninterrupted run's weights (%s, augmented, EMA, OneCycle)")
      :format(kind), function()
      -- no validation split: the final weights are then the EMA of every step, not an early
      -- epoch's best, so any difference in the resumed steps shows
      local m0, p0 = setup(kind)
      local _, h0 = ser.train.fit(m0, p0, opts())
      local st = dir .. "/state.safetensors"
      local m1, p1 = setup(kind)
      local _, h1 = ser.train.fit(m1, p1, opts { state = st })
      -- writing the state changes nothing of the training
      assert.are.equal(0, maxdiff(m0, m1))
      history_equal(h0, h1)
      local _, meta = ser.load(st)
      assert.is_true(meta.finished)
      -- interrupted in epoch 3 (4 batches per epoch): the state left is epoch 2's
      os.remove(st)
      local m2, p2 = setup(kind)
      fail_at(m2, 2 * 4 + 2)
      assert.has_error(function() ser.train.fit(m2, p2, opts { state = st }) end)
      _, meta = ser.load(st)
      assert.are.equal(2, meta.epoch)
      assert.is_false(meta.finished)
      local m3, p3 = setup(kind)
      local _, h3 = ser.train.fit(m3, p3, opts { state = st, resume = true })
      assert.are.equal(0, maxdiff(m1, m3))
      history_equal(h1, h3)
    end)
  end

  it("keeps the early-stopping state, the best weights and every parameter group's moments", function()
    -- an in-memory dataset: its shuffling draws from the global generator
    local function build()
      ser.manual_seed(4)
      -- classes shifted apart a little, so that validation improves and then stalls: with
      -- patience 2 this run stops early, two epochs after its best
      local rows, y = {}, {}
      for i = 1, 24 do y[i] = (i % 3) + 1; rows[i] = T.randn(1, 1, 64, 16) + (y[i] - 2) * 0.3 end
      local x = T.cat(rows, 1)
      local model = ser.models.create("crnn", { classes = 3 })
      local params = model:parameters()
      -- two groups with their own learning rates, as the whisper fine-tuning has
      model.param_groups = function(_, lr)
        local a, b = {}, {}
        for i, p in ipairs(params) do if i <= #params // 2 then a[#a + 1] = p else b[#b + 1] = p end end
        return { { params = a, lr = lr * 0.1 }, { params = b, lr = lr } }
      end
      local ds = { x = x, y = y, classes = { "a", "b", "c" } }
      local vrows = {}
      for i = 1, 9 do vrows[i] = T.randn(1, 1, 64, 16) + ((i - 1) % 3 - 1) * 0.3 end
      local val = { x = T.cat(vrows, 1), y = { 1, 2, 3, 1, 2, 3, 1, 2, 3 }, classes = ds.classes }
      return model, { ds, val }
    end
    local o = { epochs = 8, batch = 8, seed = 2, progress = "quiet", ema = 0.8, patience = 2, min_epochs = 1,
                schedule = "cosine" }
    local st = dir .. "/state.safetensors"
    local m1, p1 = build()
    local _, h1, r1 = ser.train.fit(m1, p1, o)
    local stop = r1.epochs   -- the epoch that ended it
    assert.is_true(stop < 8 and r1.best_epoch == stop - 2, ("stopped at %d, best %d"):format(stop, r1.best_epoch))
    local m2, p2 = build()
    fail_at(m2, (stop - 1) * 3 + 1)   -- 3 batches per epoch: fails at the first batch of the last epoch
    o.state = st
    os.remove(st)
    pcall(ser.train.fit, m2, p2, o)
    local sd, meta = ser.load(st)
    assert.are.equal(stop - 1, meta.epoch)
    assert.are.equal(1, meta.since_best)
    assert.are.equal(stop - 2, meta.best_epoch)
    assert.is_not_nil(sd["optim.param_groups.2.lr"])
    assert.is_not_nil(sd["best.rnn.weight_ih_l0"])
    local m3, p3 = build()
    o.resume = true
    local _, h3, r3 = ser.train.fit(m3, p3, o)
    assert.are.equal(0, maxdiff(m1, m3))
    history_equal(h1, h3)
    assert.are.equal(r1.stop_reason, r3.stop_reason)
    assert.are.equal(r1.best_epoch, r3.best_epoch)
    assert.are.equal(r1.weighted_f1, r3.weighted_f1)
  end)

  it("leaves a Ctrl-C'd run resumable from its last complete epoch", function()
    local st = dir .. "/state.safetensors"
    local m1, p1 = setup("crnn")
    ser.train.fit(m1, p1, opts { epochs = 3 })
    -- Ctrl-C during epoch 3: fit polls ser.core.base.interrupted() after every batch
    local base = require "ser.core.base"
    local real = base.interrupted
    local m2, p2 = setup("crnn")
    local calls, forward = 0, m2.forward
    m2.forward = function(self, x)
      if self.training then
        calls = calls + 1
        if calls == 2 * 4 + 2 then base.interrupted = function() return true end end
      end
      return forward(self, x)
    end
    local ok, _, _, r2 = pcall(ser.train.fit, m2, p2, opts { epochs = 3, state = st })
    base.interrupted = real
    assert.is_true(ok)
    assert.matches("^interrupted at epoch 3, batch 2/4", r2.stop_reason)
    local _, meta = ser.load(st)
    assert.are.equal(2, meta.epoch)
    assert.is_false(meta.finished)
    local m3, p3 = setup("crnn")
    ser.train.fit(m3, p3, opts { epochs = 3, state = st, resume = true })
    assert.are.equal(0, maxdiff(m1, m3))
  end)

  it("does not retrain a finished run: it scores the final model again", function()
    local st = dir .. "/state.safetensors"
    local m1, p1 = setup("crnn", true)
    local _, h1, r1 = ser.train.fit(m1, p1, opts { epochs = 2, state = st })
    local m2, p2 = setup("crnn", true)
    fail_at(m2, 1)   -- any training forward fails: none may happen
    local _, h2, r2 = ser.train.fit(m2, p2, opts { epochs = 2, state = st, resume = true })
    assert.are.equal(0, maxdiff(m1, m2))
    history_equal(h1, h2)
    assert.are.equal(r1.stop_reason, r2.stop_reason)
    assert.are.same(r1.confusion, r2.confusion)
    assert.are.equal(r1.accuracy, r2.accuracy)
  end)

  it("starts at epoch 1 when there is no state yet", function()
    local m1, p1 = setup("crnn")
    local _, h1 = ser.train.fit(m1, p1, opts { epochs = 1 })
    local m2, p2 = setup("crnn")
    local _, h2 = ser.train.fit(m2, p2, opts { epochs = 1, state = dir .. "/none.safetensors", resume = true })
    assert.are.equal(0, maxdiff(m1, m2))
    history_equal(h1, h2)
  end)

  it("leaves options added later out of a run's identity at the value earlier runs trained with", function()
    local trainstate = require "ser.train.state"
    local m = ser.models.create("cnn1d", { classes = 4 })
    local function id(o, recipe) return trainstate.identity({ lr = 1e-3, ema = 0.9, ema_bn = o, meta = { recipe = recipe } }, m, {}, 1) end
    local old = trainstate.identity({ lr = 1e-3, ema = 0.9, meta = { recipe = { model = { name = "cnn1d" } } } }, m, {}, 1)
    local now = id("average", { model = { name = "cnn1d", frontend = "conv" }, ema_bn = "average" })
    assert.is_nil(trainstate.mismatch(old, now))
    local other = id("recompute", { model = { name = "cnn1d", frontend = "filterbank" }, ema_bn = "recompute" })
    local why = trainstate.mismatch(old, other)
    assert.matches("option ema_bn was unset, now \"recompute\"", why, 1, true)
    assert.matches("option meta.recipe.model.frontend was unset, now \"filterbank\"", why, 1, true)
  end)

  it("refuses the state of another run and says what differs", function()
    local st = dir .. "/state.safetensors"
    local m, p = setup("crnn")
    ser.train.fit(m, p, opts { epochs = 1, state = st })
    m, p = setup("crnn")
    local ok, err = pcall(ser.train.fit, m, p, opts { epochs = 1, state = st, resume = true, lr = 3e-3 })
    assert.is_false(ok)
    assert.matches("belongs to another run (option lr was 0.001, now 0.0030000000000000001)", err, 1, true)
    ok, err = pcall(ser.train.fit, m, p, opts { epochs = 1, state = st, resume = true, seed = 4 })
    assert.matches("option seed was 3, now 4", err, 1, true)
    -- other clips: speaker 3 trains instead of speaker 2
    local corpus = ser.data.synthetic{ speakers = 3, per_class = 2, classes = 4, seconds = 0.5, seed = 5 }
    local other = corpus:split{ by = "speaker", train = { 2, 3 }, val = { 1, 1 }, quiet = true }
    ok, err = pcall(ser.train.fit, m, { other }, opts { epochs = 1, state = st, resume = true })
    assert.matches("the data differ", err, 1, true)
    local cnn = ser.models.create("cnn2d", { classes = 4 })
    ok, err = pcall(ser.train.fit, cnn, p, opts { epochs = 1, state = st, resume = true })
    assert.matches("the model's parameters differ", err, 1, true)
  end)

  it("refuses damaged and foreign files with a message, never crashes", function()
    local st = dir .. "/state.safetensors"
    local m, p = setup("crnn")
    ser.train.fit(m, p, opts { epochs = 1, state = st })
    local f = assert(io.open(st, "rb"))
    local bytes = f:read("a")
    f:close()
    local function try(content, expect)
      local path = dir .. "/bad.safetensors"
      local g = assert(io.open(path, "wb"))
      g:write(content)
      g:close()
      local mm, pp = setup("crnn")
      local ok, err = pcall(ser.train.fit, mm, pp, opts { epochs = 1, state = path, resume = true })
      assert.is_false(ok)
      assert.matches("the training state " .. path, err, 1, true)
      if expect then assert.matches(expect, err, 1, true) end
    end
    try(bytes:sub(1, #bytes // 2), "cannot be resumed")            -- truncated
    try(bytes:sub(1, 20), "cannot be resumed")
    try("", "cannot be resumed")
    try(("x"):rep(100), "cannot be resumed")
    -- a model checkpoint is not a training state
    local ck = dir .. "/ck.safetensors"
    assert(ser.save(ck, m:state_dict(), { classes = { "a", "b", "c", "d" } }))
    local g = assert(io.open(ck, "rb"))
    try(g:read("a"), "it is not a training state")
    g:close()
    -- flipped bytes inside the header: whatever the parsers make of it, an error, not a crash
    local header_len = string.unpack("<I8", bytes)
    for _, at in ipairs { 12, 40, 100, header_len // 2, header_len } do
      local path = dir .. "/flip.safetensors"
      local h = assert(io.open(path, "wb"))
      h:write(bytes:sub(1, at - 1) .. string.char((bytes:byte(at) + 17) % 256) .. bytes:sub(at + 1))
      h:close()
      local mm, pp = setup("crnn")
      local ok, err = pcall(ser.train.fit, mm, pp, opts { epochs = 1, state = path, resume = true })
      -- a flip inside a number of the history may still read; anything else names the file
      if not ok then assert.matches(path, tostring(err), 1, true) end
    end
  end)

  it("checks its options", function()
    local m, p = setup("crnn")
    assert.has_error(function() ser.train.fit(m, p, opts { resume = true }) end,
      "ser.train.fit: resume = true needs option state (the training-state file to resume from)")
    assert.has_error(function() ser.train.fit(m, p, opts { state = 3 }) end,
      "ser.train.fit: option state = 3 is invalid (expected the path of the training-state file)")
    assert.has_error(function() ser.train.fit(m, p, opts { state = dir .. "/s", resume = "yes" }) end,
      "ser.train.fit: option resume = yes is invalid (expected true or false)")
  end)
end)

-- compare.lua killed (SIGKILL) while training its second model, then rerun with --resume: the
-- first model's run is not retrained and the results equal the uninterrupted job's.
local it_bin = paths.have_serlua and it or pending

local run = dofile("tests/lua/helpers/shell.lua").run

local read = paths.read

-- results.csv / <name>_history.csv without the columns that hold seconds
local function without_seconds(csv)
  local lines, drop = {}, {}
  for line in csv:gmatch("[^\n]+") do
    local cells = {}
    for c in (line .. ","):gmatch("([^,]*),") do cells[#cells + 1] = c end
    if #lines == 0 then
      for i, c in ipairs(cells) do if c:match("seconds") then drop[i] = true end end
    end
    local keep = {}
    for i, c in ipairs(cells) do if not drop[i] then keep[#keep + 1] = c end end
    lines[#lines + 1] = table.concat(keep, ",")
  end
  return table.concat(lines, "\n")
end

describe("compare.lua --resume", function()
  after_each(tmp.cleanup)

  it_bin("continues a killed job: finished runs are not retrained, the results equal the uninterrupted job's", function()
    local dir = tmp.make("resume-compare")
    local flags = "--quick --models crnn,cnn2d --batch 32 --set augment=reference --set ema=0.9"
    local env = "SER_NUM_THREADS=1 "
    local out, rc = run(("%s%s experiments/compare.lua %s --out %s/full"):format(env, serlua, flags, dir))
    assert.are.equal(0, rc, out)
    -- the helper kills the job at the 2nd batch (of 4) of the second recipe's 2nd epoch (of 2)
    out, rc = run(("%s%s tests/lua/helpers/resume_kill.lua --after crnn --forward 6 -- experiments/compare.lua %s --out %s/cut")
      :format(env, serlua, flags, dir))
    assert.are_not.equal(0, rc, out)
    assert.is_nil(io.open(dir .. "/cut/results/results.csv"))
    out, rc = run(("%s%s experiments/compare.lua %s --out %s/cut --resume"):format(env, serlua, flags, dir))
    assert.are.equal(0, rc, out)
    assert.matches("resumed " .. dir .. "/cut/state/cnn2d_seed42.safetensors: this run finished", out, 1, true)
    assert.matches("resumed " .. dir .. "/cut/state/crnn_seed42.safetensors: 1 of 2 epochs done", out, 1, true)
    for _, f in ipairs { "results.csv", "crnn_history.csv", "cnn2d_history.csv" } do
      assert.are.equal(without_seconds(read(dir .. "/full/results/" .. f)), without_seconds(read(dir .. "/cut/results/" .. f)), f)
    end
    local a, b = assert(ser.load(dir .. "/full/results/crnn.safetensors")), assert(ser.load(dir .. "/cut/results/crnn.safetensors"))
    for k, t in pairs(a) do assert.are.equal(0, (t - b[k]):abs():max(), k) end
    -- another recipe over these states: refused, naming the field, without a traceback
    out, rc = run(("%s%s experiments/compare.lua %s --lr 0.002 --out %s/cut --resume"):format(env, serlua, flags, dir))
    assert.are_not.equal(0, rc, out)
    assert.matches("belongs to another run (option lr was 0.001, now 0.002; option meta.recipe.optim.lr was 0.001, "
      .. "now 0.002)", out, 1, true)
    assert.is_nil(out:find("stack traceback", 1, true))
  end)
end)
