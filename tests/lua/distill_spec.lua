-- Knowledge distillation (fit{distill = {teachers, alpha, temperature}}): the loss term
-- against finite differences, a student that learns its teacher's function rather than
-- the labels, teachers given as checkpoints (their own features; recorded in the student's
-- checkpoint), consistent teaching (the teachers label each batch as the student sees it),
-- and the refusals: a teacher trained on a held-out speaker, other classes, bad options,
-- mixup without consistent teaching, consistent teachers that read other inputs.
local ser = require "ser"
local T = ser.tensor
local nn = ser.nn
local distill = require "ser.train.distill"
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")

ser.data.set_warn(function() end)

local function argmax(rows) return ser.train.argmax_rows(rows) end

-- fit options: base with extra's fields added or replaced
local function merged(base, extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("ser.train.distill.loss", function()
  it("is T^2 times the cross-entropy against the soft targets, with matching gradients", function()
    ser.manual_seed(4)
    local z = T.randn(3, 4)
    local q = T.rand(3, 4)
    q = q / q:sum(2, true)
    local Tm = 2.5
    local qr = q:totable()
    local function by_hand(zr)
      local total = 0
      for i = 1, 3 do
        local m, s = -math.huge, 0
        for k = 1, 4 do m = math.max(m, zr[i][k] / Tm) end
        for k = 1, 4 do s = s + math.exp(zr[i][k] / Tm - m) end
        for k = 1, 4 do total = total - qr[i][k] * (zr[i][k] / Tm - m - math.log(s)) end
      end
      return total / 3 * Tm * Tm
    end
    local zt = z:totable()
    local zg = T.new(zt):requires_grad(true)
    local l = distill.loss(zg, q, Tm)
    assert.is_true(math.abs(l:item() - by_hand(zt)) < 1e-5)
    l:backward()
    local g, h = zg:grad():totable(), 1e-3
    for i = 1, 3 do
      for k = 1, 4 do
        local up, down = T.new(zt):totable(), T.new(zt):totable()
        up[i][k], down[i][k] = up[i][k] + h, down[i][k] - h
        local fd = (by_hand(up) - by_hand(down)) / (2 * h)
        assert.is_true(math.abs(fd - g[i][k]) < 1e-3, ("d/dz[%d][%d]: %g vs %g"):format(i, k, g[i][k], fd))
      end
    end
  end)
end)

describe("fit{distill}", function()
  after_each(tmp.cleanup)

  it("teaches the teacher's function, not the labels, with alpha = 1", function()
    ser.manual_seed(5)
    local n = 240
    local x = T.randn(n, 6)
    local teacher = nn.Linear(6, 3)
    teacher:load_state_dict({ weight = T.randn(3, 6) * 4, bias = T.zeros(3) })   -- confident: clear argmax
    local y = {}
    for i = 1, n do y[i] = (i * 7) % 3 + 1 end                  -- labels unrelated to x
    local student = nn.Linear(6, 3)
    ser.train.fit(student, { { x = x, y = y, classes = { "a", "b", "c" } } }, { epochs = 40, batch = 16, lr = 0.05,
      class_weights = false, label_smoothing = 0, progress = "quiet", seed = 1,
      distill = { teachers = { teacher }, alpha = 1, temperature = 1 } })
    assert.is_true(teacher.training, "the teacher's mode was changed")
    local t_pred, s_pred
    ser.no_grad(function()
      t_pred, s_pred = argmax(teacher(x):totable()), argmax(student(x):totable())
    end)
    local with_teacher, with_labels = 0, 0
    for i = 1, n do
      if s_pred[i] == t_pred[i] then with_teacher = with_teacher + 1 end
      if s_pred[i] == y[i] then with_labels = with_labels + 1 end
    end
    assert.is_true(with_teacher / n > 0.9, ("agrees with the teacher on %d of %d"):format(with_teacher, n))
    assert.is_true(with_labels / n < 0.5, ("agrees with the unrelated labels on %d of %d"):format(with_labels, n))
  end)

  it("records the loss on the true labels apart from the objective, for the curves", function()
    local x, y = T.randn(48, 5), {}
    for i = 1, 48 do y[i] = i % 3 + 1 end
    local teacher = nn.Linear(5, 3)
    local function history(d)
      ser.manual_seed(3)
      local _, h = ser.train.fit(nn.Linear(5, 3), { { x = x, y = y, classes = { "a", "b", "c" } } },
        { epochs = 3, batch = 8, progress = "quiet", seed = 1, distill = d })
      return h
    end
    for _, row in ipairs(history(nil)) do assert.is_nil(row.train_label_loss) end
    -- alpha 0: the objective is the label loss itself
    for _, row in ipairs(history{ teachers = { teacher }, alpha = 0 }) do
      assert.is_true(math.abs(row.train_label_loss - row.train_loss) < 1e-6 * row.train_loss)
    end
    -- alpha 0.5 at temperature 4: the T^2-scaled term makes the objective another number
    for _, row in ipairs(history{ teachers = { teacher }, alpha = 0.5, temperature = 4 }) do
      assert.is_true(row.train_label_loss > 0 and math.abs(row.train_label_loss - row.train_loss) > 0.1,
        ("label loss %g, objective %g"):format(row.train_label_loss, row.train_loss))
    end
  end)

  it("takes checkpoint teachers with their own features and records them in the student", function()
    local dir = tmp.make("distill")
    local c = ser.data.synthetic{ speakers = 4, per_class = 2, classes = 3, seconds = 1.0, seed = 6 }
    local train, val = c:split{ by = "speaker", train = { 1, 2, 3 }, val = { 4 } }
    local base = { epochs = 2, batch = 4, seconds = 1.0, classes = c.classes, progress = "quiet", seed = 1 }
    local function opts(extra) return merged(base, extra) end
    local teacher = dir .. "/teacher.safetensors"
    ser.train.fit(ser.models.create("cnn2d", { classes = #c.classes }), { train, val },
      opts{ features = { kind = "logmel", n_mels = 32 }, checkpoint = teacher, name = "cnn2d" })
    local _, tmeta = ser.load(teacher)
    assert.are.same({ 1, 2, 3 }, tmeta.train_speakers)
    assert.is_nil(tmeta.distill)
    -- the student reads the default 64 mels; the teacher its recorded 32
    local student = dir .. "/student.safetensors"
    ser.train.fit(ser.models.create("cnn2d", { classes = #c.classes }), { train, val },
      opts{ checkpoint = student, name = "cnn2d",
            distill = { teachers = { teacher, teacher }, alpha = 0.7, temperature = 3 } })
    local _, smeta = ser.load(student)
    assert.are.same({ teachers = { teacher, teacher }, alpha = 0.7, temperature = 3, consistent = false }, smeta.distill)
    -- a teacher's soft targets are its probabilities at temperature T on the clean clips with
    -- its own 32 mels (the student's loader computes 64)
    local d = distill.check({ teachers = { teacher } }, c.classes)
    local soft = distill.soft_targets(d, ser.data.loader(train, { batch = 4, seconds = 1.0 }), #c.classes)
    local ev = ser.train.evaluate(assert(ser.models.load(teacher)),
      ser.data.loader(train, { batch = 4, seconds = 1.0, features = { kind = "logmel", n_mels = 32 } }))
    local want = (T.new(ev.logits) * 0.5):softmax(2):totable()
    for i, row in ipairs(soft:totable()) do
      for k, v in ipairs(row) do assert.is_true(math.abs(v - want[i][k]) < 1e-5) end
    end
  end)

  it("with consistent = true labels each batch as the student sees it (mixed, with mixup)", function()
    ser.manual_seed(7)
    local n = 32
    local x = T.randn(n, 4)
    local rows = x:totable()
    local y = {}
    for i = 1, n do y[i] = i % 2 + 1 end
    local seen, lin = {}, nn.Linear(4, 2)
    local function is_dataset_row(r)
      for _, d in ipairs(rows) do
        local same = true
        for k = 1, 4 do if math.abs(d[k] - r[k]) > 1e-6 then same = false; break end end
        if same then return true end
      end
      return false
    end
    local function fit_with(mixup)
      seen = {}
      ser.train.fit(nn.Linear(4, 2), { { x = x, y = y, classes = { "a", "b" } } }, { epochs = 2, batch = 8,
        progress = "quiet", seed = 1, mixup = mixup,
        distill = { teachers = { lin }, consistent = true } })
    end
    -- the batch targets are the teachers' averaged softened probabilities of that batch
    local d = distill.check({ teachers = { lin, lin }, temperature = 2, consistent = true }, { "a", "b" })
    local q = distill.batch_targets(d, x, 2):totable()
    local want
    ser.no_grad(function() want = (lin(x) * 0.5):softmax(2):totable() end)
    for i = 1, n do for k = 1, 2 do assert.is_true(math.abs(q[i][k] - want[i][k]) < 1e-6) end end
    -- inside fit: the teachers see every training batch, and with mixup the mixed clips
    -- (batch_targets wrapped to record the inputs fit hands it)
    local count = 0
    local batch_targets = distill.batch_targets
    distill.batch_targets = function(dd, xb, c)
      for _, r in ipairs(xb:totable()) do seen[#seen + 1] = r end
      count = count + 1
      return batch_targets(dd, xb, c)
    end
    local ok, err = pcall(function()
      fit_with(0)
      assert.are.equal(8, count)                    -- 2 epochs x 4 batches
      for _, r in ipairs(seen) do assert.is_true(is_dataset_row(r)) end
      count = 0
      fit_with(0.4)
      assert.are.equal(8, count)
      local mixed = 0
      for _, r in ipairs(seen) do if not is_dataset_row(r) then mixed = mixed + 1 end end
      assert.is_true(mixed > #seen / 2, ("the teacher saw %d mixed rows of %d"):format(mixed, #seen))
    end)
    distill.batch_targets = batch_targets
    assert(ok, err)
  end)

  it("with consistent = true refuses checkpoint teachers that read other inputs than the student", function()
    local dir = tmp.make("distill")
    local c = ser.data.synthetic{ speakers = 3, per_class = 1, classes = 2, seconds = 0.5, seed = 10 }
    local train, val = c:split{ by = "speaker", train = { 1, 2 }, val = { 3 } }
    local teacher = dir .. "/teacher32.safetensors"
    local base = { epochs = 1, batch = 2, seconds = 0.5, classes = c.classes, progress = "quiet", seed = 1 }
    local function opts(extra) return merged(base, extra) end
    ser.train.fit(ser.models.create("cnn2d", { classes = 2 }), { train, val },
      opts{ features = { kind = "logmel", n_mels = 32 }, checkpoint = teacher })
    local function student(extra)
      return pcall(ser.train.fit, ser.models.create("cnn2d", { classes = 2 }), { train, val },
        opts(extra))
    end
    local ok, err = student{ distill = { teachers = { teacher }, consistent = true } }
    assert.is_false(ok)
    assert.matches("consistent teaching shows teacher .*teacher32%.safetensors the student's training batches, "
      .. "but the teacher's features {kind = logmel, n_mels = 32, sr = 16000} give %[1,1,32,32%] for a clip and "
      .. "the student's {kind = logmel, sr = 16000} %[1,1,64,32%]", err)
    -- options compare by what they compute: the default's 64 mels said or not, another fmax refused
    local default = dir .. "/teacher64.safetensors"
    ser.train.fit(ser.models.create("cnn2d", { classes = 2 }), { train, val }, opts{ checkpoint = default })
    local d = distill.check({ teachers = { default }, consistent = true }, c.classes)
    local function loader(features) return ser.data.loader(train, { seconds = 0.5, features = features }) end
    assert.has_no.errors(function() distill.check_inputs(d, loader{ kind = "logmel", n_mels = 64 }) end)
    ok, err = pcall(distill.check_inputs, d, loader{ kind = "logmel", fmax = 4000 })
    assert.is_false(ok)
    assert.matches("the teacher's features {kind = logmel, sr = 16000} and the student's {kind = logmel, fmax = 4000, "
      .. "sr = 16000} differ in value", err)
    ok, err = student{ features = { kind = "logmel", n_mels = 32 }, seconds = 0.4,
                       distill = { teachers = { teacher }, consistent = true } }
    assert.is_false(ok)
    assert.matches("seconds is 0%.5 for the teacher and 0%.4 for the student", err)
    ok, err = student{ features = { kind = "logmel", n_mels = 32 }, normalize = "speaker",
                       distill = { teachers = { teacher }, consistent = true } }
    assert.is_false(ok)
    assert.matches("normalize is clip for the teacher and speaker for the student", err)
    -- the same inputs: trained, and recorded as consistent
    local out = dir .. "/student.safetensors"
    ok, err = student{ features = { kind = "logmel", n_mels = 32 }, checkpoint = out,
                       distill = { teachers = { teacher }, consistent = true } }
    assert(ok, err)
    local _, meta = ser.load(out)
    assert.is_true(meta.distill.consistent)
    -- without consistent the same mismatch is fine: the teacher reads its own 32 mels
    assert(student{ distill = { teachers = { teacher } } })
  end)

  it("refuses a teacher trained on a speaker the student is evaluated on", function()
    local dir = tmp.make("distill")
    local c = ser.data.synthetic{ speakers = 3, per_class = 1, classes = 2, seconds = 0.5, seed = 8 }
    local train, val = c:split{ by = "speaker", train = { 1, 2 }, val = { 3 } }
    local leaky = dir .. "/leaky.safetensors"
    local all = c:split{ by = "speaker", train = { 1, 2, 3 }, val = {} }
    ser.train.fit(ser.models.create("cnn2d", { classes = 2 }), { all }, { epochs = 1, batch = 2, seconds = 0.5,
      classes = c.classes, progress = "quiet", checkpoint = leaky })
    local ok, err = pcall(ser.train.fit, ser.models.create("cnn2d", { classes = 2 }), { train, val },
      { epochs = 1, batch = 2, seconds = 0.5, classes = c.classes, progress = "quiet", distill = { teachers = { leaky } } })
    assert.is_false(ok)
    assert.matches("teacher .*leaky%.safetensors was trained on speaker%(s%) 3, which this run evaluates on", err)
  end)

  it("refuses bad options, other classes, missing files and mixup with clear messages", function()
    local c = ser.data.synthetic{ speakers = 2, per_class = 1, classes = 2, seconds = 0.5, seed = 9 }
    local train, val = c:split{ by = "speaker", train = { 1 }, val = { 2 } }
    local function fit_with(d, extra)
      local o = merged({ epochs = 1, batch = 2, seconds = 0.5, classes = c.classes, progress = "quiet", distill = d }, extra)
      local ok, err = pcall(ser.train.fit, ser.models.create("cnn2d", { classes = 2 }), { train, val }, o)
      assert.is_false(ok)
      return err
    end
    local t = nn.Linear(4, 2)
    assert.matches("alpha must be a number in %[0, 1%]", fit_with{ teachers = { t }, alpha = 1.5 })
    assert.matches("temperature must be a number > 0, got 0", fit_with{ teachers = { t }, temperature = 0 })
    assert.matches("teachers must be a non%-empty list", fit_with{ teachers = {} })
    assert.matches("unknown option 'temp'", fit_with{ teachers = { t }, temp = 2 })
    assert.matches("teacher 1 is a number", fit_with{ teachers = { 42 } })
    assert.matches("teacher 1: .*nope%.safetensors", fit_with{ teachers = { "/nonexistent/nope.safetensors" } })
    assert.matches("teacher 1 %(CNN2D%) has 5 outputs; the training data has 2 classes",
      fit_with{ teachers = { ser.models.create("cnn2d", { classes = 5 }) } })
    assert.matches("distill and mixup cannot be combined unless distill.consistent = true",
      fit_with({ teachers = { t } }, { mixup = 0.2 }))
    assert.matches("consistent must be true or false, got yes", fit_with{ teachers = { t }, consistent = "yes" })
    -- a module without a class count whose outputs do not fit
    local x = T.randn(6, 4)
    local ok, err = pcall(ser.train.fit, nn.Linear(4, 2), { { x = x, y = { 1, 2, 1, 2, 1, 2 }, classes = { "a", "b" } } },
      { epochs = 1, progress = "quiet", distill = { teachers = { nn.Linear(4, 3) } } })
    assert.is_false(ok)
    assert.matches("teacher Linear %(teacher 1%) gives outputs of shape %[6,3%]; expected %[6, 2%]", err)
    -- a checkpoint of other classes
    local dir = tmp.make("distill")
    local other = dir .. "/other.safetensors"
    ser.train.save_checkpoint(other, ser.models.create("cnn2d", { classes = 2 }), { "x", "y" }, { name = "cnn2d" }, 1)
    assert.matches("was trained on the classes {x, y}; the training data has {" .. table.concat(c.classes, ", "),
      fit_with{ teachers = { other } })
  end)
end)
