-- ser.optim: AdamW / SGD / schedules against the PyTorch fixtures and torch
-- 1.13 values, parameter groups, state_dict round trips (also through
-- ser.save), clipping, and the error messages.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local optim = ser.optim
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local numeric = dofile(here .. "helpers/numeric.lua")
local fixtures = dofile(here .. "helpers/fixtures.lua")

local fixture = fixtures.load
local have_fixtures = fixtures.have("adamw_p0")

local tmp = dofile(here .. "helpers/tmpdir.lua")

describe("ser.optim.AdamW", function()
  after_each(tmp.cleanup)
  it("matches PyTorch's AdamW for two steps (parameter, exp_avg, exp_avg_sq)", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local p = fixture("adamw_p0", { 10 }):requires_grad(true)
    local opt = optim.AdamW({ p }, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 1e-2 })
    for step = 1, 2 do
      p:set_grad(fixture("adamw_g" .. step, { 10 }))
      opt:step()
      local sd = opt:state_dict()
      assert.are.equal(step, sd["state.1.step"]:item())
      assert.is_true(numeric.max_abs_diff(p, fixture("adamw_p" .. step, { 10 })) < 1e-6)
      assert.is_true(numeric.max_abs_diff(sd["state.1.exp_avg"], fixture("adamw_m" .. step, { 10 })) < 1e-7)
      assert.is_true(numeric.max_abs_diff(sd["state.1.exp_avg_sq"], fixture("adamw_v" .. step, { 10 })) < 1e-9)
    end
  end)

  it("takes parameter groups with their own weight decay and exposes lr and betas", function()
    local w, b = T.ones(3):requires_grad(true), T.ones(3):requires_grad(true)
    local opt = optim.AdamW({ { params = { w } }, { params = { b }, weight_decay = 0 } },
      { lr = 0.1, weight_decay = 0.5 })
    assert.are.equal(2, opt:num_groups())
    assert.are.equal(0.5, opt:group(1).weight_decay)
    assert.are.equal(0, opt:group(2).weight_decay)
    w:set_grad(T.ones(3)); b:set_grad(T.ones(3))
    opt:step()
    -- Adam's first step moves by lr; decay multiplies w by 1 - lr*wd first
    assert.is_true(math.abs(b:totable()[1] - 0.9) < 1e-6)
    assert.is_true(math.abs(w:totable()[1] - (0.95 - 0.1)) < 1e-6)
    opt:set_lr(0.01)
    assert.are.equal(0.01, opt:get_lr(2))
    opt:set_betas(0.8, 0.99)
    assert.are.same({ 0.8, 0.99 }, { opt:get_betas(1) })
    opt:set_group({ betas = { 0.7, 0.9 }, weight_decay = 0.25 }, 2)
    assert.are.same({ 0.7, 0.9 }, { opt:get_betas(2) })
    assert.are.equal(0.25, opt:group(2).weight_decay)
    local ok, err = pcall(opt.set_group, opt, { momentum = 0.9 })
    assert.is_false(ok)
    assert.matches("unknown option 'momentum'", err)
    ok, err = pcall(opt.set_lr, opt, -1)
    assert.matches("invalid learning rate %-1", err)
    opt:zero_grad()
    assert.are.equal(0, w:grad():abs():sum():item())
    opt:zero_grad(true)
    assert.is_nil(w:grad())
    opt:step() -- no gradients: nothing moves, no step counted
    assert.are.equal(1, opt:state_dict()["state.1.step"]:item())
  end)

  it("continues identically after state_dict -> ser.save -> ser.load -> load_state_dict", function()
    local function run(p, opt, n)
      for i = 1, n do
        p:set_grad(T.new { 0.1 * i, -0.2, 0.3 / i })
        opt:step()
      end
    end
    local p1 = T.new { 1, 2, 3 }:requires_grad(true)
    local o1 = optim.AdamW({ p1 }, { lr = 0.05 })
    run(p1, o1, 3)
    local path = tmp.make("optim") .. "/adamw.safetensors"
    assert.is_true(ser.save(path, o1:state_dict()))
    local sd = assert(ser.load(path))
    local p2 = T.new(p1:totable()):requires_grad(true)
    local o2 = optim.AdamW({ p2 }, { lr = 0.05 })
    o2:load_state_dict(sd)
    assert.are.equal(0.05, o2:get_lr()) -- float32-stored numbers do not perturb equal settings
    run(p1, o1, 2)
    run(p2, o2, 2)
    assert.are.same(p1:totable(), p2:totable())
  end)

  it("refuses a state_dict of another layout, changing nothing", function()
    local p = T.ones(2, 2):requires_grad(true)
    local opt = optim.AdamW({ p })
    p:set_grad(T.ones(2, 2))
    opt:step()
    local sd = opt:state_dict()
    sd["state.1.exp_avg"] = T.zeros(4)
    local ok, err = pcall(opt.load_state_dict, opt, sd)
    assert.is_false(ok)
    assert.matches("has shape %[4%], the parameter is %[2,2%]", err)
    sd = opt:state_dict()
    sd["state.2.exp_avg"] = T.zeros(2, 2)
    ok, err = pcall(opt.load_state_dict, opt, sd)
    assert.is_false(ok)
    assert.matches("unexpected entries.*state%.2%.exp_avg", err)
    assert.are.equal(1, opt:state_dict()["state.1.step"]:item())
  end)

  it("reports bad options", function()
    local p = T.ones(2)
    local ok, err = pcall(optim.AdamW, { p }, { lr = 1e-3, beta = 0.9 })
    assert.is_false(ok)
    assert.matches("unknown option 'beta'", err)
    ok, err = pcall(optim.AdamW, { p }, { betas = { 0.9, 1.5 } })
    assert.matches("invalid betas %(0%.9, 1%.5%)", err)
    ok, err = pcall(optim.AdamW, {}, {})
    assert.matches("non%-empty list", err)
    ok, err = pcall(optim.AdamW, { p, 3 })
    assert.matches("parameter 2 is a number", err)
    ok, err = pcall(optim.AdamW, { p, p })
    assert.matches("appears more than once", err)
    ok, err = pcall(optim.SGD, { p }, { momentum = 0.9 })
    assert.matches("SGD has no default lr", err)
  end)
end)

describe("ser.optim.SGD", function()
  -- torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)
  it("matches PyTorch with momentum, Nesterov and weight decay", function()
    local p = T.new { 0.5, -1.0, 2.0, 0.25 }:requires_grad(true)
    local opt = optim.SGD({ p }, { lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 0.1 })
    for _, g in ipairs { { 0.1, -0.2, 0.3, 0.0 }, { -0.5, 0.4, 0.1, 1.0 }, { 0.2, 0.2, -0.2, -0.3 } } do
      p:set_grad(T.new(g))
      opt:step()
    end
    assert.is_true(numeric.max_abs_diff(p, T.new { 0.51141125, -0.999064028, 1.87492871, 0.133927956 }) < 1e-6)
    assert.is_not_nil(opt:state_dict()["state.1.momentum_buffer"])
  end)

  it("fits a small least-squares problem", function()
    ser.manual_seed(1)
    local X = T.randn(32, 3)
    local w_true = T.new { { 1.5 }, { -2 }, { 0.5 } }
    local y = X:matmul(w_true)
    local w = T.zeros(3, 1):requires_grad(true)
    local opt = optim.SGD({ w }, { lr = 0.1, momentum = 0.9 })
    for _ = 1, 200 do
      opt:zero_grad()
      F.mse_loss(X:matmul(w), y):backward()
      opt:step()
    end
    assert.is_true(numeric.max_abs_diff(w, w_true) < 1e-3)
  end)
end)

describe("schedules", function()
  it("OneCycleLR sets PyTorch's lr and beta1 at every step", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local p = T.ones(2):requires_grad(true)
    local opt = optim.AdamW({ p }, { lr = 1e-3 })
    local sched = optim.OneCycleLR(opt, { max_lr = 1e-3, total_steps = 100 })
    local lrs, b1s = {}, {}
    for s = 1, 100 do
      lrs[s], b1s[s] = opt:get_lr(), (opt:get_betas())
      p:set_grad(T.ones(2))
      opt:step()
      if s < 100 then sched:step() end
    end
    local want_lr, want_b1 = fixture("onecycle_lr", { 100 }):totable(), fixture("onecycle_beta1", { 100 }):totable()
    for s = 1, 100 do
      assert(math.abs(lrs[s] - want_lr[s]) <= 1e-6 * want_lr[s], ("lr at step %d: %g vs %g"):format(s - 1, lrs[s], want_lr[s]))
      assert(math.abs(b1s[s] - want_b1[s]) < 1e-6, ("beta1 at step %d"):format(s - 1))
    end
    local lr, b1 = optim.onecycle_lr(29, { max_lr = 1e-3, total_steps = 100 })
    assert.are.equal(1e-3, lr)
    assert.is_true(math.abs(b1 - 0.85) < 1e-12)
  end)

  it("OneCycleLR refuses to run past total_steps and restores from its state_dict", function()
    local opt = optim.AdamW({ T.ones(1) })
    local sched = optim.OneCycleLR(opt, { max_lr = 0.01, epochs = 2, steps_per_epoch = 2 })
    for _ = 1, 4 do sched:step() end
    local ok, err = pcall(sched.step, sched)
    assert.is_false(ok)
    assert.matches("stepped 5 times, but total_steps is 4", err)
    local opt2 = optim.AdamW({ T.ones(1) })
    local s2 = optim.OneCycleLR(opt2, { max_lr = 0.01, total_steps = 4 })
    s2:load_state_dict(sched:state_dict())
    assert.are.equal(opt:get_lr(), opt2:get_lr())
    ok, err = pcall(optim.OneCycleLR, opt, { max_lr = 0.01 })
    assert.matches("needs total_steps", err)
    ok, err = pcall(optim.OneCycleLR, opt, { max_lr = 0.01, total_steps = 10, warmup = 3 })
    assert.matches("unknown option 'warmup'", err)
  end)

  it("CosineAnnealingLR follows PyTorch's per-epoch values", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local opt = optim.SGD({ T.ones(1) }, { lr = 1e-3 })
    local sched = optim.CosineAnnealingLR(opt, { T_max = 35 })
    local want = fixture("cosine_lr", { 35 }):totable()
    for e = 1, 35 do
      assert(math.abs(opt:get_lr() - want[e]) <= 1e-6 * want[e], ("epoch %d"):format(e))
      sched:step()
    end
    assert.is_true(math.abs(opt:get_lr()) < 1e-12)
    assert.is_true(math.abs(optim.cosine_lr(10, { base_lr = 1e-3, T_max = 35 }) - want[11]) < 1e-9)
    local opt2 = optim.SGD({ T.ones(1) }, { lr = 1e-3 })
    local s2 = optim.CosineAnnealingLR(opt2, { T_max = 35 })
    s2:load_state_dict(sched:state_dict())
    assert.are.equal(opt:get_lr(), opt2:get_lr())
  end)
end)

describe("ser.optim.clip_grad_norm", function()
  -- torch.nn.utils.clip_grad_norm_([a, b], 2.5)
  it("scales gradients like PyTorch and returns the norm before clipping", function()
    local a, b = T.zeros(2, 3), T.zeros(4)
    a:set_grad(T.new { { 1, -2, 3 }, { 0.5, 0.5, -4 } })
    b:set_grad(T.new { 2, 0, -1, 1 })
    local n = optim.clip_grad_norm({ a, b, T.zeros(1) }, 2.5)
    assert.is_true(math.abs(n - 6.04152298) < 1e-6)
    assert.is_true(numeric.max_abs_diff(b:grad(), T.new { 0.827605724, 0, -0.413802862, 0.413802862 }) < 1e-7)
    local ok, err = pcall(optim.clip_grad_norm, { a }, -1)
    assert.is_false(ok)
    assert.matches("max_norm %-1", err)
  end)
end)

describe("ser.optim.update_bn", function()
  local nn = ser.nn

  local function batches_of(list)
    local i = 0
    return function() i = i + 1; return list[i] end
  end

  it("sets BatchNorm's running statistics to the mean of the batches' statistics, in train mode, and restores the rest", function()
    ser.manual_seed(3)
    local m = nn.Sequential{ nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2, { momentum = 0.3 }) }
    m:eval()
    local xs = { T.randn(5, 3) * 2 + 1, T.randn(7, 3), { x = T.randn(6, 3) - 3 } }   -- tensors or { x = }
    -- the first BatchNorm sees the Linear's outputs: their per-batch mean and unbiased variance
    local lin, mean_sum, var_sum = m["0"], T.zeros(4), T.zeros(4)
    ser.no_grad(function()
      for _, b in ipairs(xs) do
        local h = lin(type(b) == "table" and b.x or b)
        local mu = h:mean(1)
        local dev = h - mu:view(1, -1)
        mean_sum = mean_sum + mu
        var_sum = var_sum + (dev * dev):sum(1) / (h:shape()[1] - 1)
      end
    end)
    local n = optim.update_bn(m, batches_of(xs))
    assert.are.equal(3, n)
    local sd = m:state_dict()
    assert.is_true(numeric.max_abs_diff(sd["1.running_mean"], mean_sum / 3) < 1e-5)
    assert.is_true(numeric.max_abs_diff(sd["1.running_var"], var_sum / 3) < 1e-5)
    assert.are.equal(3, sd["1.num_batches_tracked"]:item())
    assert.are.equal(3, sd["4.num_batches_tracked"]:item())
    assert.are.equal(0.1, m["1"].momentum)                    -- each BatchNorm's own momentum is back
    assert.are.equal(0.3, m["4"].momentum)
    assert.is_false(m.training)                               -- and the model's mode
    assert.is_false(m["1"].training)
  end)

  it("draws no batch for a model without BatchNorm, and leaves the statistics as they were when a batch fails", function()
    local drawn = 0
    local n = optim.update_bn(nn.Linear(3, 2), function() drawn = drawn + 1; return T.zeros(2, 3) end)
    assert.are.equal(0, n)
    assert.are.equal(0, drawn)
    local m = nn.Sequential{ nn.Linear(3, 2), nn.BatchNorm1d(2) }
    local before = m:state_dict()["1.running_var"]:clone()
    local ok, err = pcall(optim.update_bn, m, batches_of({ T.randn(4, 3), T.randn(4, 5) }))
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("3", 1, true))
    assert.are.same(before:totable(), m:state_dict()["1.running_var"]:totable())
    assert.are.equal(0.1, m["1"].momentum)
    ok, err = pcall(optim.update_bn, {}, batches_of({}))
    assert.matches("expected an nn module", err)
    ok, err = pcall(optim.update_bn, m, { T.zeros(2, 3) })
    assert.matches("expected an iterator over batches", err)
  end)
end)

describe("ser.optim.EMA", function()
  local nn = ser.nn

  it("averages parameters and BatchNorm statistics with the warm-up decay, and copies the batch count", function()
    ser.manual_seed(1)
    local m = nn.Sequential{ nn.Linear(3, 2), nn.BatchNorm1d(2) }
    local ema = optim.EMA(m, { decay = 0.9 })
    local sd = m:state_dict()
    local w0 = sd["0.weight"]:clone()
    ser.no_grad(function()
      sd["0.weight"]:add_(T.ones(2, 3))
      sd["1.running_mean"]:fill_(4)
      sd["1.num_batches_tracked"]:fill_(7)
    end)
    local d = ema:update()
    assert.are.near(2 / 11, d, 1e-12)                 -- min(0.9, (1 + 1) / (10 + 1))
    local avg = ema:state_dict()
    assert.is_true(numeric.max_abs_diff(avg["0.weight"], w0 + (1 - d)) < 1e-6)
    assert.is_true(numeric.max_abs_diff(avg["1.running_mean"], T.full({ 2 }, 4 * (1 - d))) < 1e-6)
    assert.are.equal(7, avg["1.num_batches_tracked"]:item())
    for _ = 1, 200 do ema:update() end
    assert.are.equal(0.9, ema:update())                -- the warm-up ends at the given decay
    assert.is_true(numeric.max_abs_diff(ema:state_dict()["0.weight"], sd["0.weight"]) < 1e-5)
    -- the averaged state loads into a model of the same architecture
    local m2 = nn.Sequential{ nn.Linear(3, 2), nn.BatchNorm1d(2) }
    m2:load_state_dict(ema:state_dict())
    assert.is_true(numeric.max_abs_diff(m2:state_dict()["1.running_mean"], ema:state_dict()["1.running_mean"]) == 0)
  end)

  it("without warm-up uses the decay from the first update", function()
    local m = nn.Linear(2, 1)
    local ema = optim.EMA(m, { decay = 0.5, warmup = false })
    assert.are.equal(0.5, ema:update())
  end)

  it("rejects a bad decay, an unknown option and a non-module", function()
    local m = nn.Linear(2, 1)
    local ok, err = pcall(optim.EMA, m, { decay = 1 })
    assert.is_false(ok)
    assert.matches("decay must be a number in %[0, 1%), got 1", err)
    ok, err = pcall(optim.EMA, m, { decy = 0.9 })
    assert.matches("unknown option 'decy'", err)
    ok, err = pcall(optim.EMA, {}, {})
    assert.matches("expected an nn module", err)
  end)
end)
