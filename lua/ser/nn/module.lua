-- nn.Module: the base class of every layer and model (PyTorch's torch.nn.Module).
--
-- A module owns, in registration order, named parameters (leaf tensors that
-- require grad), named buffers (state that is saved but not trained, such as
-- BatchNorm's running statistics) and named child modules. Registration order
-- is what makes `named_parameters()` and `state_dict()` produce PyTorch's
-- dotted names in PyTorch's order, so checkpoints carry across.
local T = require "ser.core.tensor"
local u = require "ser.nn.util"

local Module = { __name = "Module" }
Module.__index = Module

-- Metamethods are not found through __index, so every class gets copies.
local METAMETHODS = { "__call", "__tostring" }

-- Creates a class deriving from `parent` (Module by default). Instances are
-- made with Class(...), which calls Class.init(self, ...).
function Module.class(name, parent)
  parent = parent or Module
  local cls = setmetatable({ __name = name }, { __index = parent, __call = function(c, ...)
    local self = setmetatable({}, c)
    Module.init(self)
    c.init(self, ...)
    return self
  end })
  cls.__index = cls
  for _, m in ipairs(METAMETHODS) do cls[m] = parent[m] end
  return cls
end

function Module:init()
  rawset(self, "_params", {})    -- ordered names
  rawset(self, "_buffers", {})
  rawset(self, "_children", {})
  rawset(self, "_slots", {})     -- name -> "param" | "buffer" | "child"
  rawset(self, "training", true)
end

local function check_name(self, name, what)
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    error(("%s: %s name must be a non-empty string without '.', got %s"):format(
      self.__name, what, tostring(name)), 3)
  end
  if self._slots[name] then
    error(("%s: '%s' is already registered as a %s"):format(self.__name, name, self._slots[name]), 3)
  end
end

-- A parameter may be nil (e.g. Linear without bias): the name is then absent
-- from parameters and state_dict, as in PyTorch.
function Module:register_parameter(name, t)
  check_name(self, name, "parameter")
  if t ~= nil then
    u.check_tensor(t, self.__name .. ": parameter '" .. name .. "'")
    t:requires_grad(true)
    self._slots[name] = "param"
    table.insert(self._params, name)
  end
  self[name] = t
  return t
end

function Module:register_buffer(name, t)
  check_name(self, name, "buffer")
  u.check_tensor(t, self.__name .. ": buffer '" .. name .. "'")
  self._slots[name] = "buffer"
  table.insert(self._buffers, name)
  self[name] = t
  return t
end

function Module:add_module(name, m)
  check_name(self, name, "child module")
  if getmetatable(m) == nil or type(m.forward) ~= "function" then
    error(("%s: child '%s' is not a module (got %s)"):format(self.__name, name, type(m)), 2)
  end
  self._slots[name] = "child"
  table.insert(self._children, name)
  self[name] = m
  return m
end

function Module:forward()
  error(self.__name .. ": forward is not implemented", 2)
end

function Module:__call(...)
  return self:forward(...)
end

-- Iterators return arrays (simple to index, sort and count in scripts).

-- { {name, module}, ... } in pre-order, the module itself first with name "".
function Module:named_modules(prefix, out)
  out = out or {}
  prefix = prefix or ""
  out[#out + 1] = { prefix, self }
  for _, name in ipairs(self._children) do
    self[name]:named_modules(prefix == "" and name or prefix .. "." .. name, out)
  end
  return out
end

function Module:children()
  local out = {}
  for _, name in ipairs(self._children) do out[#out + 1] = self[name] end
  return out
end

function Module:modules()
  local out = {}
  for _, nm in ipairs(self:named_modules()) do out[#out + 1] = nm[2] end
  return out
end

local function qualify(prefix, name)
  return prefix == "" and name or prefix .. "." .. name
end

function Module:named_parameters()
  local out = {}
  for _, nm in ipairs(self:named_modules()) do
    local m = nm[2]
    for _, name in ipairs(m._params) do out[#out + 1] = { qualify(nm[1], name), m[name] } end
  end
  return out
end

function Module:parameters()
  local out = {}
  for _, np in ipairs(self:named_parameters()) do out[#out + 1] = np[2] end
  return out
end

function Module:named_buffers()
  local out = {}
  for _, nm in ipairs(self:named_modules()) do
    local m = nm[2]
    for _, name in ipairs(m._buffers) do out[#out + 1] = { qualify(nm[1], name), m[name] } end
  end
  return out
end

-- Total number of parameter elements (trainable only, like PyTorch summaries).
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do m.training = mode and true or false end
  return self
end

function Module:eval()
  return self:train(false)
end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p:zero_grad() end
end

-- Calls fn(module) on every module, children before parents (PyTorch order).
function Module:apply(fn)
  for _, name in ipairs(self._children) do self[name]:apply(fn) end
  fn(self)
  return self
end

-- Ordered PyTorch keys of the state dict: per module (pre-order) its
-- parameters, then its buffers.
function Module:state_dict_keys()
  local order = {}
  for _, nm in ipairs(self:named_modules()) do
    local m = nm[2]
    for _, name in ipairs(m._params) do order[#order + 1] = qualify(nm[1], name) end
    for _, name in ipairs(m._buffers) do order[#order + 1] = qualify(nm[1], name) end
  end
  return order
end

-- key -> tensor. The tensors are the module's own (no copy): ser.save writes
-- them out, load_state_dict copies into them.
function Module:state_dict()
  local sd = {}
  for _, nm in ipairs(self:named_modules()) do
    local m = nm[2]
    for _, name in ipairs(m._params) do sd[qualify(nm[1], name)] = m[name] end
    for _, name in ipairs(m._buffers) do sd[qualify(nm[1], name)] = m[name] end
  end
  return sd
end

local function shape_str(s)
  return "[" .. table.concat(s, ",") .. "]"
end

-- Copies the tensors of `sd` (key -> tensor, as from ser.load) into the
-- module. Everything is validated before anything is written, and every
-- problem is reported in one error. opts.strict (default true) makes missing
-- and unexpected keys errors; shape mismatches are always errors.
-- Returns { missing = {...}, unexpected = {...} } (non-empty only when strict=false).
function Module:load_state_dict(sd, opts)
  opts = opts or {}
  local strict = opts.strict ~= false
  if type(sd) ~= "table" then
    error(("%s:load_state_dict: expected a table of name -> tensor, got %s"):format(self.__name, type(sd)), 2)
  end
  local own = self:state_dict()
  local missing, unexpected, wrong = {}, {}, {}
  for _, key in ipairs(self:state_dict_keys()) do
    local src = sd[key]
    if src == nil then
      missing[#missing + 1] = key
    elseif not T.is_tensor(src) then
      wrong[#wrong + 1] = ("%s: expected a tensor, got %s"):format(key, type(src))
    else
      local a, b = shape_str(own[key]:shape()), shape_str(src:shape())
      -- PyTorch stores num_batches_tracked as a 0-d tensor; ours is [1].
      local scalars = own[key]:numel() == 1 and src:numel() == 1
      if a ~= b and not scalars then wrong[#wrong + 1] = ("%s: checkpoint has %s, model has %s"):format(key, b, a) end
    end
  end
  for key in pairs(sd) do
    if own[key] == nil then unexpected[#unexpected + 1] = tostring(key) end
  end
  table.sort(unexpected)
  local problems, n = {}, #wrong
  if strict and #missing > 0 then
    problems[#problems + 1] = ("missing keys (%d): %s"):format(#missing, table.concat(missing, ", "))
    n = n + #missing
  end
  if strict and #unexpected > 0 then
    problems[#problems + 1] = ("unexpected keys (%d): %s"):format(#unexpected, table.concat(unexpected, ", "))
    n = n + #unexpected
  end
  if #wrong > 0 then problems[#problems + 1] = "shape mismatches: " .. table.concat(wrong, "; ") end
  if n > 0 then
    error(("%s:load_state_dict: %d problem(s), nothing was loaded:\n  %s"):format(
      self.__name, n, table.concat(problems, "\n  ")), 2)
  end
  for key, dst in pairs(own) do
    if sd[key] ~= nil then u.copy_into(dst, sd[key]) end
  end
  return { missing = missing, unexpected = unexpected }
end

-- One-line description of the layer's settings, as in PyTorch's extra_repr.
function Module:extra_repr()
  return ""
end

-- A tree like PyTorch's repr:
--   CNN2D(
--     (features): Sequential(
--       (0): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
function Module:__tostring()
  local head = self.__name .. "(" .. self:extra_repr()
  if #self._children == 0 then return head .. ")" end
  local lines = { head }
  for _, name in ipairs(self._children) do
    local child = tostring(self[name]):gsub("\n", "\n  ")
    lines[#lines + 1] = "  (" .. name .. "): " .. child
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

return Module
