-- ser.nn.functional: the stateless layer functions, gathered from the C
-- binding modules (ser.core.nn_cnn: conv, batch norm, pooling, linear,
-- dropout, activations; ser.core.nn_rnn: lstm and the losses;
-- ser.core.nn_transformer: layer_norm, gelu, scaled_dot_product_attention)
-- plus the few that are plain tensor methods (flatten, softmax, log_softmax).
-- A name that no module provides raises an error naming it instead of
-- returning nil, so a typo is found at the call, not as "attempt to call a nil value".
local F = {}
local sources = { "ser.core.nn_cnn", "ser.core.nn_rnn", "ser.core.nn_transformer" }

for _, name in ipairs(sources) do
  for k, v in pairs(require(name)) do F[k] = v end
end

-- flatten(x, start_dim, end_dim), 1-based dims, negatives from the end.
function F.flatten(x, start_dim, end_dim)
  local shape = x:shape()
  local n = #shape
  local s = start_dim or 2
  local e = end_dim or -1
  if s < 0 then s = n + 1 + s end
  if e < 0 then e = n + 1 + e end
  if s < 1 or e > n or s > e then
    error(("flatten: dims %s..%s out of range for shape [%s]"):format(tostring(start_dim),
      tostring(end_dim), table.concat(shape, ",")), 2)
  end
  local out = {}
  for i = 1, s - 1 do out[#out + 1] = shape[i] end
  local m = 1
  for i = s, e do m = m * shape[i] end
  out[#out + 1] = m
  for i = e + 1, n do out[#out + 1] = shape[i] end
  return x:reshape(out)
end

-- softmax(x, dim) / log_softmax(x, dim): PyTorch's F names for the tensor methods (1-based dim).
F.softmax = F.softmax or function(x, dim) return x:softmax(dim) end
F.log_softmax = F.log_softmax or function(x, dim) return x:log_softmax(dim) end

return setmetatable(F, { __index = function(_, k)
  error(("ser.nn.functional.%s does not exist (functions come from %s)"):format(tostring(k),
    table.concat(sources, ", ")), 2)
end })
