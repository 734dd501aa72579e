-- ser.optim: AdamW, SGD, clip_grad_norm, OneCycleLR, CosineAnnealingLR with
-- PyTorch 1.13 semantics. The arithmetic is in C (ser.core.optim); this file
-- turns Lua arguments into parameter groups and keeps schedules and state_dicts.
--
-- state_dict()s are flat tables of name -> tensor (numbers as 0-d tensors), so
-- they can be written with ser.save next to the model's:
--   state.<k>.step, state.<k>.exp_avg, state.<k>.exp_avg_sq   (AdamW; k = 1-based
--   state.<k>.momentum_buffer                                   parameter number
--   param_groups.<g>.lr, .weight_decay, .beta1, .beta2, ...     over all groups)
local C = require "ser.core.optim"
local options = require "ser.options"
local base = require "ser.core.base"

local optim = {}

local function fail(fname, fmt, ...)
  error(("%s: " .. fmt):format(fname, ...), 3)
end

local function is_tensor(v)
  local mt = getmetatable(v)
  return mt ~= nil and mt.__name == "ser.Tensor"
end

local KNOWN = {
  AdamW = { lr = true, betas = true, eps = true, weight_decay = true },
  SGD = { lr = true, momentum = true, dampening = true, nesterov = true, weight_decay = true },
}

-- Reads the hyper-parameters of an options or group table into C's field names.
local function hparams(fname, t, base)
  local h = {}
  for k, v in pairs(base or {}) do h[k] = v end
  for k, v in pairs(t) do
    if k ~= "params" and type(k) == "string" then
      if not KNOWN[fname][k] then options.check({ [k] = v }, KNOWN[fname], fname, 2) end
      if k == "betas" then
        if type(v) ~= "table" or type(v[1]) ~= "number" or type(v[2]) ~= "number" then
          fail(fname, "option 'betas' must be a table of two numbers, e.g. {0.9, 0.999}")
        end
        h.beta1, h.beta2 = v[1], v[2]
      elseif k == "nesterov" then
        if type(v) ~= "boolean" then fail(fname, "option 'nesterov' must be a boolean, got %s", type(v)) end
        h.nesterov = v
      else
        if type(v) ~= "number" then fail(fname, "option '%s' must be a number, got %s", k, type(v)) end
        h[k] = v
      end
    end
  end
  return h
end

-- params: a list of tensors, or a list of groups { {params = {...}, lr = ...}, ... }.
local function make_groups(fname, params, opts)
  if type(params) ~= "table" or params[1] == nil then
    fail(fname, "expected a non-empty list of parameter tensors or of groups as the first argument, got %s",
      type(params) == "table" and "an empty table" or type(params))
  end
  if opts ~= nil and type(opts) ~= "table" then fail(fname, "options must be a table, got %s", type(opts)) end
  local defaults = hparams(fname, opts or {})
  local groups = {}
  if is_tensor(params[1]) then
    for i, p in ipairs(params) do
      if not is_tensor(p) then fail(fname, "parameter %d is a %s, expected a tensor", i, type(p)) end
    end
    local g = hparams(fname, {}, defaults)
    g.params = params
    groups[1] = g
  else
    for i, grp in ipairs(params) do
      if type(grp) ~= "table" or type(grp.params) ~= "table" then
        fail(fname, "group %d must be a table with a 'params' list", i)
      end
      local g = hparams(fname, grp, defaults)
      g.params = grp.params
      groups[i] = g
    end
  end
  return groups
end

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__name = "ser.optim.Optimizer"

local function new_optimizer(kind, fname, params, opts)
  local groups = make_groups(fname, params, opts)
  local self = setmetatable({ kind = kind, name = fname, _c = C.new(kind, groups) }, Optimizer)
  return self
end

function Optimizer:step() self._c:step() end

-- PyTorch 1.13's default keeps the gradient tensors and fills them with zeros.
function Optimizer:zero_grad(set_to_none) self._c:zero_grad(set_to_none == true) end

function Optimizer:num_groups() return self._c:num_groups() end

-- Hyper-parameters of group g (default 1) as a table (a copy).
function Optimizer:group(g) return self._c:group(g or 1) end
function Optimizer:param_groups()
  local out = {}
  for g = 1, self._c:num_groups() do
    out[g] = self._c:group(g)
    out[g].params = self._c:params(g)
  end
  return out
end
-- Changes fields of group g (default: every group): opt:set_group({lr = 1e-4}, 2);
-- the constructor's option names (betas = {b1, b2}, ...), checked the same way.
function Optimizer:set_group(fields, g)
  if type(fields) ~= "table" then fail(self.name, "set_group: expected a table of options, got %s", type(fields)) end
  local h = hparams(self.name, fields)
  local first, last = g or 1, g or self._c:num_groups()
  for i = first, last do self._c:set_group(i, h) end
end

function Optimizer:get_lr(g) return self._c:group(g or 1).lr end
function Optimizer:set_lr(lr, g)
  if type(lr) ~= "number" then fail(self.name, "set_lr: lr must be a number, got %s", type(lr)) end
  self:set_group({ lr = lr }, g)
end
function Optimizer:get_betas(g)
  local h = self._c:group(g or 1)
  return h.beta1, h.beta2
end
function Optimizer:set_betas(b1, b2, g)
  if self.kind ~= "adamw" then fail(self.name, "set_betas: %s has no betas", self.name) end
  local h = self._c:group(g or 1)
  self:set_group({ betas = { b1 or h.beta1, b2 or h.beta2 } }, g)
end

local STATE_NAMES = { adamw = { "exp_avg", "exp_avg_sq" }, sgd = { "momentum_buffer" } }
local GROUP_FIELDS = {
  adamw = { "lr", "weight_decay", "beta1", "beta2", "eps" },
  sgd = { "lr", "weight_decay", "momentum", "dampening", "nesterov" },
}

-- Visits every parameter as (global 1-based number k, group g, index i).
local function each_param(c, fn)
  local k = 0
  for g = 1, c:num_groups() do
    for i = 1, #c:params(g) do
      k = k + 1
      fn(k, g, i)
    end
  end
end

function Optimizer:state_dict()
  local sd, c, names = {}, self._c, STATE_NAMES[self.kind]
  each_param(c, function(k, g, i)
    local step, s1, s2 = c:get_state(g, i)
    if s1 ~= nil or step > 0 then
      sd[("state.%d.step"):format(k)] = C.scalar(step)
      if s1 ~= nil then sd[("state.%d.%s"):format(k, names[1])] = s1 end
      if s2 ~= nil then sd[("state.%d.%s"):format(k, names[2])] = s2 end
    end
  end)
  for g = 1, c:num_groups() do
    local h = c:group(g)
    for _, f in ipairs(GROUP_FIELDS[self.kind]) do
      local v = h[f]
      if type(v) == "boolean" then v = v and 1 or 0 end
      sd[("param_groups.%d.%s"):format(g, f)] = C.scalar(v)
    end
  end
  return sd
end

-- Restores a state_dict from this kind of optimizer with the same parameter
-- layout. Everything is checked before anything changes; unknown or missing
-- entries are all listed in one error.
function Optimizer:load_state_dict(sd)
  local fname = self.name .. ".load_state_dict"
  if type(sd) ~= "table" then fail(fname, "expected a table, got %s", type(sd)) end
  local c, names = self._c, STATE_NAMES[self.kind]
  local used, problems, plan, groups = {}, {}, {}, {}
  local function get(key)
    local v = sd[key]
    if v ~= nil then used[key] = true end
    if v ~= nil and not is_tensor(v) then
      problems[#problems + 1] = ("'%s' is a %s, expected a tensor"):format(key, type(v))
      return nil
    end
    return v
  end
  each_param(c, function(k, g, i)
    local step = get(("state.%d.step"):format(k))
    local s1 = get(("state.%d.%s"):format(k, names[1]))
    local s2 = names[2] and get(("state.%d.%s"):format(k, names[2])) or nil
    plan[#plan + 1] = { g = g, i = i, step = step and math.tointeger(step:item()) or 0, s1 = s1, s2 = s2 }
    if step and not math.tointeger(step:item()) then
      problems[#problems + 1] = ("'state.%d.step' is %s, expected a whole number"):format(k, tostring(step:item()))
    end
  end)
  for g = 1, c:num_groups() do
    local h = {}
    for _, f in ipairs(GROUP_FIELDS[self.kind]) do
      local t = get(("param_groups.%d.%s"):format(g, f))
      if t then
        h[f] = t:item()
        if f == "nesterov" then h[f] = h[f] ~= 0 end
      end
    end
    groups[g] = h
  end
  local unknown = {}
  for key in pairs(sd) do
    if not used[key] then unknown[#unknown + 1] = tostring(key) end
  end
  table.sort(unknown)
  if #unknown > 0 then
    problems[#problems + 1] = "unexpected entries (another optimizer or parameter layout?): "
      .. table.concat(unknown, ", ")
  end
  if #problems > 0 then fail(fname, "%s", table.concat(problems, "; ")) end
  -- The C side checks shapes; check all of them before the first change.
  for _, p in ipairs(plan) do
    local param = c:params(p.g)[p.i]
    for _, s in ipairs { p.s1 or false, p.s2 or false } do
      if s and table.concat(s:shape(), ",") ~= table.concat(param:shape(), ",") then
        fail(fname, "state of parameter %d in group %d has shape [%s], the parameter is [%s]", p.i, p.g,
          table.concat(s:shape(), ","), table.concat(param:shape(), ","))
      end
    end
  end
  for _, p in ipairs(plan) do c:set_state(p.g, p.i, p.step, p.s1, p.s2) end
  -- The numbers were stored as float32: a value equal to the current one within
  -- that rounding keeps the current (double) value, so a restore changes nothing
  -- it should not.
  for g, h in ipairs(groups) do
    local cur = c:group(g)
    for f, v in pairs(h) do
      if type(v) == "number" and math.abs(v - cur[f]) <= 1e-6 * math.abs(cur[f]) then h[f] = nil end
    end
    if next(h) then c:set_group(g, h) end
  end
end

function Optimizer:__tostring()
  local parts = {}
  for g = 1, self._c:num_groups() do
    local h = self._c:group(g)
    local keys = {}
    for k in pairs(h) do keys[#keys + 1] = k end
    table.sort(keys)
    local kv = {}
    for _, k in ipairs(keys) do kv[#kv + 1] = ("%s=%s"):format(k, tostring(h[k])) end
    parts[#parts + 1] = ("  group %d (%d params): %s"):format(g, #self._c:params(g), table.concat(kv, ", "))
  end
  return self.name .. " (\n" .. table.concat(parts, "\n") .. "\n)"
end

--- AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2})
function optim.AdamW(params, opts) return new_optimizer("adamw", "AdamW", params, opts) end

--- SGD(params, {lr = (required), momentum = 0, dampening = 0, nesterov = false, weight_decay = 0})
function optim.SGD(params, opts) return new_optimizer("sgd", "SGD", params, opts) end

--- clip_grad_norm(params, max_norm[, norm_type = 2 or math.huge]) -> total norm before clipping
function optim.clip_grad_norm(params, max_norm, norm_type)
  if type(params) ~= "table" then fail("clip_grad_norm", "expected a list of tensors, got %s", type(params)) end
  if type(max_norm) ~= "number" then fail("clip_grad_norm", "max_norm must be a number, got %s", type(max_norm)) end
  return C.clip_grad_norm(params, max_norm, norm_type or 2)
end

local function check_opt(fname, opt)
  if getmetatable(opt) ~= Optimizer then
    fail(fname, "expected an optimizer (ser.optim.AdamW or SGD) as the first argument, got %s", type(opt))
  end
end

local function check_keys(fname, opts, known)
  if type(opts) ~= "table" then fail(fname, "options must be a table, got %s", type(opts)) end
  options.check(opts, known, fname, 2)
end

-- ---- OneCycleLR ----

local ONECYCLE_KEYS = { max_lr = true, total_steps = true, epochs = true, steps_per_epoch = true, pct_start = true,
  div_factor = true, final_div_factor = true, cycle_momentum = true, base_momentum = true, max_momentum = true }

local function onecycle_opts(fname, o)
  check_keys(fname, o, ONECYCLE_KEYS)
  local total = o.total_steps
  if total == nil and o.epochs and o.steps_per_epoch then total = o.epochs * o.steps_per_epoch end
  if math.type(total) ~= "integer" then
    fail(fname, "needs total_steps (an integer), or epochs and steps_per_epoch; got total_steps = %s", tostring(total))
  end
  return { max_lr = o.max_lr, total_steps = total, pct_start = o.pct_start, div_factor = o.div_factor,
           final_div_factor = o.final_div_factor, base_momentum = o.base_momentum, max_momentum = o.max_momentum }
end

--- onecycle_lr(step, {max_lr =, total_steps =, ...}) -> lr, beta1 at 0-based optimizer step `step`
function optim.onecycle_lr(step, opts)
  local o = onecycle_opts("onecycle_lr", opts)
  if type(o.max_lr) ~= "number" then fail("onecycle_lr", "needs max_lr (a number)") end
  return C.onecycle(step, o)
end

--- cosine_lr(step, {base_lr =, T_max =, eta_min = 0}) -> lr after `step` scheduler steps
function optim.cosine_lr(step, opts)
  check_keys("cosine_lr", opts, { base_lr = true, T_max = true, eta_min = true })
  return C.cosine(step, opts.base_lr, opts.T_max, opts.eta_min or 0)
end

local OneCycleLR = {}
OneCycleLR.__index = OneCycleLR
OneCycleLR.__name = "ser.optim.OneCycleLR"

-- Applies the schedule at self.last_step to every group.
function OneCycleLR:_apply()
  for g, o in ipairs(self._groups) do
    local lr, m = C.onecycle(self.last_step, o)
    local fields = { lr = lr }
    if self.cycle_momentum then
      if self.opt.kind == "adamw" then fields.beta1 = m else fields.momentum = m end
    end
    self.opt._c:set_group(g, fields)
  end
end

--- OneCycleLR(opt, {max_lr =, total_steps = (or epochs + steps_per_epoch), pct_start = 0.3,
---   div_factor = 25, final_div_factor = 1e4, cycle_momentum = true, base_momentum = 0.85,
---   max_momentum = 0.95}); max_lr may be a list with one value per group.
--- Construction sets step 0's values; call step() after each opt:step().
function optim.OneCycleLR(opt, opts)
  local fname = "OneCycleLR"
  check_opt(fname, opt)
  local base = onecycle_opts(fname, opts)
  local self = setmetatable({ opt = opt, last_step = 0, total_steps = base.total_steps,
                              cycle_momentum = opts.cycle_momentum ~= false, _groups = {} }, OneCycleLR)
  for g = 1, opt:num_groups() do
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    if type(opts.max_lr) == "table" then
      if #opts.max_lr ~= opt:num_groups() then
        fail(fname, "max_lr has %d values for %d parameter groups", #opts.max_lr, opt:num_groups())
      end
      o.max_lr = opts.max_lr[g]
    end
    if type(o.max_lr) ~= "number" then fail(fname, "needs max_lr (a number or one per group)") end
    self._groups[g] = o
  end
  self:_apply() -- also validates the options (C raises with the message)
  return self
end

function OneCycleLR:step()
  if self.last_step + 1 > self.total_steps then
    error(("OneCycleLR: stepped %d times, but total_steps is %d; raise total_steps (or epochs x steps_per_epoch)")
      :format(self.last_step + 1, self.total_steps), 2)
  end
  self.last_step = self.last_step + 1
  self:_apply()
end

function OneCycleLR:get_lr(g) return (C.onecycle(self.last_step, self._groups[g or 1])) end
function OneCycleLR:get_last_lr()
  local out = {}
  for g = 1, #self._groups do out[g] = self:get_lr(g) end
  return out
end
function OneCycleLR:state_dict() return { last_epoch = C.scalar(self.last_step) } end
function OneCycleLR:load_state_dict(sd)
  local t = type(sd) == "table" and sd.last_epoch or nil
  local n = t and is_tensor(t) and math.tointeger(t:item())
  if not n or n < 0 or n > self.total_steps then
    error(("OneCycleLR.load_state_dict: expected {last_epoch = <0-d tensor, 0..%d>}, got %s"):format(
      self.total_steps, t and tostring(t:item()) or "nothing"), 2)
  end
  self.last_step = n
  self:_apply()
end

-- ---- CosineAnnealingLR ----

local CosineAnnealingLR = {}
CosineAnnealingLR.__index = CosineAnnealingLR
CosineAnnealingLR.__name = "ser.optim.CosineAnnealingLR"

--- CosineAnnealingLR(opt, {T_max =, eta_min = 0}); the groups' current lrs are the base lrs.
function optim.CosineAnnealingLR(opt, opts)
  local fname = "CosineAnnealingLR"
  check_opt(fname, opt)
  check_keys(fname, opts, { T_max = true, eta_min = true })
  if math.type(opts.T_max) ~= "integer" or opts.T_max < 1 then
    fail(fname, "T_max must be an integer >= 1, got %s", tostring(opts.T_max))
  end
  local self = setmetatable({ opt = opt, last_step = 0, T_max = opts.T_max, eta_min = opts.eta_min or 0,
                              base_lrs = {} }, CosineAnnealingLR)
  for g = 1, opt:num_groups() do self.base_lrs[g] = opt:get_lr(g) end
  return self
end

function CosineAnnealingLR:_apply()
  for g, base in ipairs(self.base_lrs) do
    self.opt._c:set_group(g, { lr = C.cosine(self.last_step, base, self.T_max, self.eta_min) })
  end
end

function CosineAnnealingLR:step()
  self.last_step = self.last_step + 1
  self:_apply()
end
function CosineAnnealingLR:get_lr(g) return C.cosine(self.last_step, self.base_lrs[g or 1], self.T_max, self.eta_min) end
function CosineAnnealingLR:get_last_lr()
  local out = {}
  for g = 1, #self.base_lrs do out[g] = self:get_lr(g) end
  return out
end
-- The base lrs are not saved: they come from the optimizer's settings, which a
-- resumed run recreates exactly (float32 storage would round them).
function CosineAnnealingLR:state_dict() return { last_epoch = C.scalar(self.last_step) } end
function CosineAnnealingLR:load_state_dict(sd)
  local t = type(sd) == "table" and sd.last_epoch or nil
  local n = t and is_tensor(t) and math.tointeger(t:item())
  if not n or n < 0 then
    error(("CosineAnnealingLR.load_state_dict: expected {last_epoch = <0-d tensor >= 0>}, got %s")
      :format(t and tostring(t:item()) or "nothing"), 2)
  end
  self.last_step = n
  self:_apply()
end

-- ---- EMA of weights ----

local EMA = {}
EMA.__index = EMA
EMA.__name = "ser.optim.EMA"

--- EMA(model, {decay = 0.999, warmup = true}): an exponential moving average of the
--- model's parameters and floating buffers (BatchNorm running statistics), the "EMA
--- model" of timm's ModelEmaV2. ema:update() after each optimizer step folds the current
--- weights in; ema:state_dict() is the averaged state, for model:load_state_dict().
--- With warmup the decay of update n is min(decay, (1 + n) / (10 + n)) (TensorFlow's
--- ExponentialMovingAverage), so the first updates do not anchor the average to the
--- random initialisation. BatchNorm's num_batches_tracked is copied, not averaged.
function optim.EMA(model, opts)
  opts = opts or {}
  check_keys("EMA", opts, { decay = true, warmup = true })
  local decay = opts.decay or 0.999
  if type(decay) ~= "number" or not (decay >= 0 and decay < 1) then
    fail("EMA", "decay must be a number in [0, 1), got %s", tostring(decay))
  end
  if type(model) ~= "table" or type(model.state_dict) ~= "function" then
    fail("EMA", "expected an nn module as the first argument, got %s", type(model))
  end
  local self = setmetatable({ model = model, decay = decay, warmup = opts.warmup ~= false, updates = 0,
                              keys = model:state_dict_keys(), named = {}, avg = {}, src = {}, copy_avg = {},
                              copy_src = {} }, EMA)
  local sd = model:state_dict()
  for _, k in ipairs(self.keys) do
    local t = sd[k]
    local a = t:detach():clone()
    if k:match("num_batches_tracked$") then
      self.copy_avg[#self.copy_avg + 1], self.copy_src[#self.copy_src + 1] = a, t
    else
      self.avg[#self.avg + 1], self.src[#self.src + 1] = a, t
    end
    self.named[k] = a
  end
  return self
end

--- ema:update(): folds the model's current weights into the average; returns the decay used.
function EMA:update()
  self.updates = self.updates + 1
  local d = self.decay
  if self.warmup then d = math.min(d, (1 + self.updates) / (10 + self.updates)) end
  C.ema_update(self.avg, self.src, d)
  C.ema_update(self.copy_avg, self.copy_src, 0)
  return d
end

--- ema:state_dict(): key -> averaged tensor (the EMA's own tensors; clone to keep a copy).
function EMA:state_dict()
  local sd = {}
  for _, k in ipairs(self.keys) do sd[k] = self.named[k] end
  return sd
end

--- ema:load_state_dict(sd[, updates]): puts back an average saved from ema:state_dict() (a
--- training state being resumed) and, given, the number of updates behind it (the warm-up's
--- position). Every name and shape is checked before anything changes.
function EMA:load_state_dict(sd, updates)
  if type(sd) ~= "table" then fail("EMA.load_state_dict", "expected a table of tensors, got %s", type(sd)) end
  if updates ~= nil and (math.type(updates) ~= "integer" or updates < 0) then
    fail("EMA.load_state_dict", "updates must be a whole number >= 0, got %s", tostring(updates))
  end
  local problems = {}
  for _, k in ipairs(self.keys) do
    local t = sd[k]
    if not is_tensor(t) then
      problems[#problems + 1] = ("'%s' is %s"):format(k, t == nil and "missing" or type(t))
    elseif table.concat(t:shape(), ",") ~= table.concat(self.named[k]:shape(), ",") then
      problems[#problems + 1] = ("'%s' has shape [%s], the model's is [%s]"):format(k, table.concat(t:shape(), ","),
        table.concat(self.named[k]:shape(), ","))
    end
  end
  for k in pairs(sd) do
    if self.named[k] == nil then problems[#problems + 1] = ("unexpected entry '%s'"):format(tostring(k)) end
  end
  if #problems > 0 then fail("EMA.load_state_dict", "%s", table.concat(problems, "; ")) end
  for _, k in ipairs(self.keys) do self.named[k]:copy_(sd[k]) end
  if updates then self.updates = updates end
end

function EMA:__tostring()
  return ("EMA(decay=%g, warmup=%s, updates=%d)"):format(self.decay, tostring(self.warmup), self.updates)
end

optim.Optimizer = Optimizer

-- ---- BatchNorm statistics of averaged weights ----

--- update_bn(model, batches): every BatchNorm's running statistics recomputed from scratch
--- as the plain mean, over the batches, of each batch's statistics in train mode (PyTorch's
--- torch.optim.swa_utils.update_bn). For averaged weights (an EMA, SWA): the running
--- statistics averaged beside them were gathered under other weights and need not describe
--- the averaged model's activations. `batches` is an iterator (a for-in function) yielding
--- tensors or tables with the input as x. No gradients; the model's modes and each
--- BatchNorm's momentum are put back. Returns the number of batches run (0: a model without
--- BatchNorm, whose batches are not drawn, or no batches: the statistics are unchanged).
function optim.update_bn(model, batches)
  if type(model) ~= "table" or type(model.modules) ~= "function" then
    fail("update_bn", "expected an nn module as the first argument, got %s", type(model))
  end
  if type(batches) ~= "function" then
    fail("update_bn", "expected an iterator over batches as the second argument, got %s", type(batches))
  end
  local norms, modes = {}, {}
  for i, m in ipairs(model:modules()) do
    modes[i] = m.training
    if type(m.__name) == "string" and m.__name:match("^BatchNorm") and m.track_running_stats then
      norms[#norms + 1] = { module = m, momentum = m.momentum }
    end
  end
  if #norms == 0 then return 0 end
  local saved = {}
  for i, bn in ipairs(norms) do
    local m = bn.module
    saved[i] = { m.running_mean:clone(), m.running_var:clone(), m.num_batches_tracked:clone() }
  end
  model:train()
  local n = 0
  local ok, err = pcall(base.no_grad, function()
    for b in batches do
      local x = type(b) == "table" and b.x or b
      n = n + 1
      for _, bn in ipairs(norms) do
        if n == 1 then   -- momentum 1: the first batch's statistics replace the old ones outright
          bn.module.num_batches_tracked:zero_()
        end
        bn.module.momentum = 1 / n   -- the running value becomes the mean of the n batches' values
      end
      model(x)
    end
  end)
  for i, m in ipairs(model:modules()) do m.training = modes[i] end
  for i, bn in ipairs(norms) do
    bn.module.momentum = bn.momentum
    if not ok then   -- a failed pass leaves the statistics as they were
      bn.module.running_mean:copy_(saved[i][1])
      bn.module.running_var:copy_(saved[i][2])
      bn.module.num_batches_tracked:copy_(saved[i][3])
    end
  end
  if not ok then error(err, 0) end
  return n
end

return optim
