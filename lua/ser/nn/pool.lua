-- Pooling layers: MaxPool1d/2d, AvgPool1d/2d (stride defaults to the kernel,
-- odd sizes floor like PyTorch) and AdaptiveAvgPool1d/2d.
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local u = require "ser.nn.util"

local ALLOWED = { stride = true, padding = true }

local function pool(name, nd, fn)
  local P = Module.class(name)
  function P:init(kernel_size, opts)
    opts = u.opts(opts, name, ALLOWED)
    self.kernel_size = u.tuple(kernel_size, nd, "kernel_size", name, 1)
    self.stride = u.tuple(opts.stride or kernel_size, nd, "stride", name, 1)
    self.padding = u.tuple(opts.padding or 0, nd, "padding", name, 0)
    -- PyTorch shows the arguments as given (an int stays an int).
    self._repr = { kernel_size = kernel_size, stride = opts.stride or kernel_size, padding = opts.padding or 0 }
  end
  function P:forward(x)
    return F[fn](x, self.kernel_size, { stride = self.stride, padding = self.padding })
  end
  function P:extra_repr()
    local function show(v) return type(v) == "table" and u.pytuple(v) or tostring(v) end
    local s = ("kernel_size=%s, stride=%s, padding=%s"):format(show(self._repr.kernel_size),
      show(self._repr.stride), show(self._repr.padding))
    if fn:find("max") then s = s .. ", dilation=1, ceil_mode=False" end
    return s
  end
  return P
end

local function adaptive(name, nd, fn)
  local P = Module.class(name)
  function P:init(output_size)
    self.output_size = u.tuple(output_size, nd, "output_size", name, 1)
    self._repr = output_size
  end
  function P:forward(x)
    return F[fn](x, self.output_size)
  end
  function P:extra_repr()
    local v = self._repr
    return "output_size=" .. (type(v) == "table" and u.pytuple(v) or tostring(v))
  end
  return P
end

return {
  MaxPool1d = pool("MaxPool1d", 1, "max_pool1d"),
  MaxPool2d = pool("MaxPool2d", 2, "max_pool2d"),
  AvgPool1d = pool("AvgPool1d", 1, "avg_pool1d"),
  AvgPool2d = pool("AvgPool2d", 2, "avg_pool2d"),
  AdaptiveAvgPool1d = adaptive("AdaptiveAvgPool1d", 1, "adaptive_avg_pool1d"),
  AdaptiveAvgPool2d = adaptive("AdaptiveAvgPool2d", 2, "adaptive_avg_pool2d"),
}
