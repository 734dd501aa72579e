-- Module:summary(input_shape): a layer table (name, type, output shape,
-- parameter count) from one forward pass on zeros, like torchsummary.
-- The pass runs in eval mode under no_grad so BatchNorm's running statistics
-- are not touched; the modules' modes are restored afterwards.
local T = require "ser.core.tensor"
local base = require "ser.core.base"

local function shape_of(v)
  if T.is_tensor(v) then return "[" .. table.concat(v:shape(), ",") .. "]" end
  if type(v) == "table" and T.is_tensor(v[1]) then return shape_of(v[1]) end
  return type(v)
end

local function own_params(m)
  local n = 0
  for _, name in ipairs(m._params) do n = n + m[name]:numel() end
  return n
end

return function(self, input_shape)
  if type(input_shape) ~= "table" or #input_shape == 0 then
    error(("%s:summary: expected the input shape as a table, e.g. {1, 1, 64, 251}, got %s"):format(
      self.__name, tostring(input_shape)), 2)
  end
  local rows, modes = {}, {}
  local named = self:named_modules()
  for i, nm in ipairs(named) do
    local name, m = nm[1], nm[2]
    modes[i] = m.training
    if #m._children == 0 and name ~= "" then
      local cls_forward = getmetatable(m).forward
      rawset(m, "forward", function(mod, ...)
        local out = table.pack(cls_forward(mod, ...))
        rows[#rows + 1] = { name, m.__name, shape_of(out[1]), own_params(m) }
        return table.unpack(out, 1, out.n)
      end)
    end
  end
  self:eval()
  local ok, err = pcall(base.no_grad, function() return self(T.zeros(input_shape)) end)
  for i, nm in ipairs(named) do
    rawset(nm[2], "forward", nil)
    nm[2].training = modes[i]
  end
  if not ok then
    error(("%s:summary: forward on zeros of shape [%s] failed: %s"):format(self.__name,
      table.concat(input_shape, ","), tostring(err)), 2)
  end
  local w1, w2 = #"Layer (type)", #"Output shape"
  for _, r in ipairs(rows) do
    w1 = math.max(w1, #r[1] + #r[2] + 3)
    w2 = math.max(w2, #r[3])
  end
  local fmt = "%-" .. w1 .. "s  %-" .. w2 .. "s  %12s"
  local lines = { fmt:format("Layer (type)", "Output shape", "Param #") }
  lines[2] = ("-"):rep(#lines[1])
  for _, r in ipairs(rows) do
    lines[#lines + 1] = fmt:format(("%s (%s)"):format(r[1], r[2]), r[3], tostring(r[4]))
  end
  lines[#lines + 1] = lines[2]
  lines[#lines + 1] = ("Total params: %d"):format(self:num_parameters())
  lines[#lines + 1] = ("Input shape: [%s]"):format(table.concat(input_shape, ","))
  return table.concat(lines, "\n")
end
