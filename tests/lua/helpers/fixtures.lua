-- The PyTorch / torchaudio reference tensors in ../shared/fixtures (SER_FIXTURES overrides;
-- the relative default is the tree's root, where make test runs busted). Specs check have()
-- and mark their parity cases pending, naming M.dir, when the folder is absent.
-- Load with dofile.
local T = require("ser").tensor

local M = {}

M.dir = os.getenv("SER_FIXTURES") or "../shared/fixtures"

function M.path(name) return M.dir .. "/" .. name .. ".f32" end

function M.have(name)
  local f = io.open(M.path(name), "rb")
  if f then f:close() return true end
  return false
end

-- The fixture as a tensor of that shape (an error naming the file when it cannot be read).
function M.load(name, shape) return T.fromfile(M.path(name), shape) end

return M
