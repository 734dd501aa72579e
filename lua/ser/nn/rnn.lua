-- LSTM with PyTorch's parameters (weight_ih_l{k}[_reverse] [4H, in],
-- weight_hh_l{k} [4H, H], bias_ih/bias_hh [4H]; gate rows i, f, g, o) and
-- initialisation U(-1/sqrt(H), 1/sqrt(H)) for every tensor.
-- forward(x) returns out, { h_n, c_n } like PyTorch's (out, (h_n, c_n)).
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local u = require "ser.nn.util"

local LSTM = Module.class("LSTM")
function LSTM:init(input_size, hidden_size, opts)
  opts = u.opts(opts, "LSTM", { num_layers = true, bias = true, batch_first = true, bidirectional = true })
  self.input_size = u.positive_int(input_size, "input_size", "LSTM")
  self.hidden_size = u.positive_int(hidden_size, "hidden_size", "LSTM")
  self.num_layers = u.positive_int(opts.num_layers or 1, "num_layers", "LSTM")
  self.bias = opts.bias ~= false
  self.batch_first = opts.batch_first == true
  self.bidirectional = opts.bidirectional == true
  local H, dirs = self.hidden_size, self.bidirectional and 2 or 1
  local bound = 1 / math.sqrt(H)
  self._weights = {}
  for layer = 0, self.num_layers - 1 do
    local in_size = layer == 0 and self.input_size or H * dirs
    for d = 1, dirs do
      local sfx = layer .. (d == 2 and "_reverse" or "")
      local names = { "weight_ih_l" .. sfx, "weight_hh_l" .. sfx }
      local shapes = { { 4 * H, in_size }, { 4 * H, H } }
      if self.bias then
        names[3], names[4] = "bias_ih_l" .. sfx, "bias_hh_l" .. sfx
        shapes[3], shapes[4] = { 4 * H }, { 4 * H }
      end
      for i, n in ipairs(names) do
        self._weights[#self._weights + 1] = self:register_parameter(n, u.uniform(shapes[i], bound))
      end
    end
  end
end

function LSTM:forward(x)
  local out, h_n, c_n = F.lstm(x, self._weights, {
    hidden_size = self.hidden_size, num_layers = self.num_layers, bias = self.bias,
    batch_first = self.batch_first, bidirectional = self.bidirectional })
  return out, { h_n, c_n }
end

function LSTM:extra_repr()
  local s = ("%d, %d"):format(self.input_size, self.hidden_size)
  if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
  if not self.bias then s = s .. ", bias=False" end
  if self.batch_first then s = s .. ", batch_first=True" end
  if self.bidirectional then s = s .. ", bidirectional=True" end
  return s
end

return { LSTM = LSTM }
