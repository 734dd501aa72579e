-- Conv1d and Conv2d with PyTorch's constructor, weight layout [out, in, k...]
-- and default initialisation: kaiming_uniform(a=sqrt(5)) for the weight,
-- which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local u = require "ser.nn.util"

local ALLOWED = { stride = true, padding = true, dilation = true, bias = true }

local function make(name, nd, fn)
  local Conv = Module.class(name)
  function Conv:init(in_channels, out_channels, kernel_size, opts)
    opts = u.opts(opts, name, ALLOWED)
    self.in_channels = u.positive_int(in_channels, "in_channels", name)
    self.out_channels = u.positive_int(out_channels, "out_channels", name)
    self.kernel_size = u.tuple(kernel_size, nd, "kernel_size", name, 1)
    self.stride = u.tuple(opts.stride or 1, nd, "stride", name, 1)
    self.padding = u.tuple(opts.padding or 0, nd, "padding", name, 0)
    self.dilation = u.tuple(opts.dilation or 1, nd, "dilation", name, 1)
    local shape, fan_in = { self.out_channels, self.in_channels }, self.in_channels
    for i = 1, nd do
      shape[#shape + 1] = self.kernel_size[i]
      fan_in = fan_in * self.kernel_size[i]
    end
    local bound = 1 / math.sqrt(fan_in)
    self:register_parameter("weight", u.uniform(shape, bound))
    self:register_parameter("bias", opts.bias ~= false and u.uniform({ self.out_channels }, bound) or nil)
  end

  function Conv:forward(x)
    return F[fn](x, self.weight, self.bias,
      { stride = self.stride, padding = self.padding, dilation = self.dilation })
  end

  function Conv:extra_repr()
    local s = ("%d, %d, kernel_size=%s, stride=%s"):format(self.in_channels, self.out_channels,
      u.pytuple(self.kernel_size), u.pytuple(self.stride))
    for i = 1, nd do
      if self.padding[i] ~= 0 then s = s .. ", padding=" .. u.pytuple(self.padding) break end
    end
    for i = 1, nd do
      if self.dilation[i] ~= 1 then s = s .. ", dilation=" .. u.pytuple(self.dilation) break end
    end
    if self.bias == nil then s = s .. ", bias=False" end
    return s
  end
  return Conv
end

return { Conv1d = make("Conv1d", 1, "conv1d"), Conv2d = make("Conv2d", 2, "conv2d") }
