-- ser.dist: the processes of a job started by mpirun (docs/distributed.md).
--
-- Under `mpirun -n N serlua script.lua ...` every process runs the same script;
-- ser.dist.init() loads the MPI plug-in (ser_mpi.so, next to serlua or ser.so)
-- and installs its communicator in the core. Without mpirun init() does nothing,
-- no MPI library is loaded, and every function below behaves as for one process
-- (rank 0 of 1), so library code calls them unconditionally.
local C = require "ser.core.dist"
local T = require "ser.core.tensor"

local M = {}

local state -- nil: not looked yet; false: one process; else { rank =, size =, library = }

-- The variables Open MPI's launcher (and PMIx launchers) set in every process it starts.
local function launcher_size()
  local n = os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMIX_SIZE")
  if n then return tonumber(n) or n end
  if os.getenv("PMIX_RANK") then return "?" end
  return nil
end

-- Where the plug-in may be: SER_MPI_PLUGIN, beside the running serlua, beside ser.so, package.cpath.
local function plugin_candidates()
  local list = {}
  local explicit = os.getenv("SER_MPI_PLUGIN")
  if explicit and explicit ~= "" then return { explicit } end
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local exe = arg and arg[i]
  if exe then list[#list + 1] = (exe:match("^(.*)/[^/]*$") or ".") .. "/ser_mpi.so" end
  local so = package.searchpath("ser", package.cpath)
  if so then list[#list + 1] = (so:match("^(.*)/[^/]*$") or ".") .. "/ser_mpi.so" end
  local found = package.searchpath("ser_mpi", package.cpath)
  if found then list[#list + 1] = found end
  return list
end

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Starts MPI when mpirun started this process; returns rank, size (0, 1 otherwise).
function M.init()
  if state == nil then
    local size = launcher_size()
    if not size then
      state = false
    else
      local tried, path = plugin_candidates(), nil
      for _, p in ipairs(tried) do
        if readable(p) then path = p; break end
      end
      if not path then
        error(("ser.dist: this process was started by mpirun (%s processes) but the MPI plug-in ser_mpi.so "
          .. "was not found (looked for %s); install Open MPI (scripts/install-deps.sh installs libopenmpi-dev) "
          .. "and rebuild with make, or set SER_MPI_PLUGIN=/path/to/ser_mpi.so"):format(tostring(size),
          #tried > 0 and table.concat(tried, ", ") or "nothing: no serlua or ser.so path is known"), 2)
      end
      local open, err = package.loadlib(path, "luaopen_ser_mpi")
      if not open then error(("ser.dist: cannot load the MPI plug-in %s: %s"):format(path, tostring(err)), 2) end
      local info = open()
      local rank, n = C.install(info.comm)
      state = { rank = rank, size = n, library = info.library, plugin = path }
    end
  end
  if not state then return 0, 1 end
  return state.rank, state.size
end

function M.rank() return C.rank() end
function M.size() return C.size() end
-- True on the process that writes files and prints (rank 0; the only one without mpirun).
function M.is_root() return C.rank() == 0 end
-- True when the job has more than one process.
function M.active() return C.size() > 1 end
-- "Open MPI v4.1.4" etc., or nil without mpirun.
function M.library() return state and state.library or nil end

M.allreduce = C.allreduce             -- (t[, "bf16" | "fp16"]): in-place sum over processes
M.broadcast = C.broadcast             -- (t, root): in place
M.broadcast_string = C.broadcast_string
M.allgather_string = C.allgather_string
M.barrier = C.barrier
M.activity = C.activity               -- what this process is doing, for the failure message
M.sync_batchnorm = C.sync_batchnorm   -- ([on]) -> previous

-- True on every process when cond is true on any (a collective: every process calls it).
function M.any(cond)
  if not M.active() then return cond and true or false end
  local t = T.new({ cond and 1 or 0 })
  C.allreduce(t)
  return t:item() > 0
end

-- Plain data (numbers, strings, booleans, tables of them, tensors) as Lua source, and
-- back: how the runs of a sweep travel to every process. Functions and other userdata
-- are dropped. Decoding loads the text in an empty environment.
local function encode(v, out)
  local ty = type(v)
  if ty == "number" then
    if v ~= v then out[#out + 1] = "0/0"
    elseif v == math.huge then out[#out + 1] = "math_huge"
    elseif v == -math.huge then out[#out + 1] = "-math_huge"
    elseif math.type(v) == "integer" then out[#out + 1] = ("%d"):format(v)
    else out[#out + 1] = ("%.17g"):format(v) end
  elseif ty == "string" then out[#out + 1] = ("%q"):format(v)
  elseif ty == "boolean" then out[#out + 1] = tostring(v)
  elseif T.is_tensor(v) then
    out[#out + 1] = "tensor("
    encode(v:shape(), out)
    out[#out + 1] = ","
    encode(v:contiguous():view(-1):totable(), out)
    out[#out + 1] = ")"
  elseif ty == "table" then
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      local tk, tx = type(k), type(x)
      if (tk == "string" or tk == "number") and (tx ~= "function" and tx ~= "thread"
        and (tx ~= "userdata" or T.is_tensor(x))) then
        out[#out + 1] = "["
        encode(k, out)
        out[#out + 1] = "]="
        encode(x, out)
        out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "nil"
  end
end

function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

function M.decode(text)
  local env = { math_huge = math.huge, tensor = function(shape, data)
    if #data == 0 then return T.zeros(table.unpack(shape)) end
    return T.new(data):view(table.unpack(shape))
  end }
  local chunk, err = load("return " .. text, "=ser.dist.decode", "t", env)
  if not chunk then error("ser.dist.decode: " .. tostring(err), 2) end
  return chunk()
end

-- Every process's value v (plain data, see encode), as a list in rank order, on every process.
function M.allgather_values(v)
  local texts = C.allgather_string(M.encode(v))
  local out = {}
  for i, t in ipairs(texts) do out[i] = M.decode(t) end
  return out
end

-- Copies rank 0's parameters and buffers into every process's model (in state_dict key
-- order, the same on every process), as PyTorch's DDP does when it wraps a model.
function M.broadcast_state(model, root)
  if not M.active() then return end
  local sd = model:state_dict()
  for _, k in ipairs(model:state_dict_keys()) do
    local t = sd[k]
    if t:is_contiguous() then
      C.broadcast(t, root or 0)
    else
      local c = t:contiguous()
      C.broadcast(c, root or 0)
      t:copy_(c)
    end
  end
end

-- The rows of one global batch that this process trains on: a contiguous share, the
-- sizes differing by at most one (rank r of n takes rows floor(r m / n) + 1 .. floor((r + 1) m / n)).
function M.shard(rows, rank, size)
  local m = #rows
  local first, last = (rank * m) // size + 1, ((rank + 1) * m) // size
  local out = {}
  for i = first, last do out[#out + 1] = rows[i] end
  return out
end

return M
