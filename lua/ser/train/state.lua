-- ser.train.state: the training state of one ser.train.fit run on disk, so that an interrupted
-- run resumes where it stopped (docs/train.md, "Resuming").
--
-- After every completed epoch fit writes (opts.state = path; ser.save: a temporary file renamed,
-- so a killed job leaves the previous state or the new one, never half of one):
--   tensors  model.<k>   the raw weights and buffers (BatchNorm running statistics included)
--            optim.<k>   AdamW's state_dict: every parameter's moments and step, every group
--            ema.<k>     the weight average (opts.ema), best.<k> the best epoch's weights
--   meta     kind ("serlua-train-state-1"), identity (what run this is), epoch, scheduler position, EMA update count,
--            early-stopping state (best score and epoch, epochs since, the best checkpoint's
--            path), the history, the seconds spent so far and the generator state of every
--            process (ser.get_rng_state; data-parallel processes each draw their own dropout).
-- When the run ends (early stop, last epoch, a NaN loss: not Ctrl-C, which is resumable) the
-- state is rewritten as "finished": the final weights, the history and why it ended, so a rerun
-- scores the model again without training it.
--
-- A state belongs to one run: M.identity digests fit's options (the recipe among them), the
-- seed, the data (every clip's path, label and speaker; in-memory audio and datasets by their
-- bytes), the model's parameter names and shapes, and the number of processes. Resuming from a
-- state of another run is refused with what differs: continuing a different run would mix two
-- runs silently, and training from scratch over it would destroy the other run's state.
local ckpt = require "ser.core.checkpoint"
local base = require "ser.core.base"
local digest = require "ser.core.digest"
local T = require "ser.core.tensor"

local M = {}

M.FORMAT = "serlua-train-state-1"

-- fit options that do not change what is trained (where files go, how progress shows; and
-- data_parallel = false, a --spread share: the process count below is what matters, and a
-- spread run trains exactly what a serial one does)
local NOT_IDENTITY = { progress = true, checkpoint = true, state = true, resume = true, embeddings = true,
  name = true, data_parallel = true }

-- Options added after states were first written, with the value every earlier run trained
-- with: at that value they are left out of the identity, so that a state written before the
-- option existed still resumes.
local LATER = { ema_bn = "average", ["meta.recipe.ema_bn"] = "average", ema_bn_batches = 0,
  ["meta.recipe.ema_bn_batches"] = 0, ["meta.recipe.model.frontend"] = "conv" }
M.LATER = LATER

-- A canonical text of plain data: sorted keys, exact numbers; functions and userdata by kind.
local function canon(v, out)
  local ty = type(v)
  if ty == "number" then
    out[#out + 1] = math.type(v) == "integer" and ("%d"):format(v) or ("%.17g"):format(v)
  elseif ty == "string" then out[#out + 1] = ("%q"):format(v)
  elseif ty == "boolean" or ty == "nil" then out[#out + 1] = tostring(v)
  elseif T.is_tensor(v) then out[#out + 1] = "tensor:" .. digest.sha256_tensor(v:contiguous())
  elseif ty == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
      return type(a) < type(b)
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      canon(k, out)
      out[#out + 1] = "="
      canon(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = ty   -- a Lua function (features, augmentation): its kind only
  end
  return out
end

function M.canonical(v) return table.concat(canon(v, {})) end

-- The data of one split, as text to digest: a corpus part's clips (path, label, speaker; the
-- in-memory audio of a synthetic corpus by its bytes), an in-memory dataset's tensor and labels.
local function split_text(p)
  if p == nil or p == false then return "none" end
  if type(p) == "table" and type(p.items) == "table" then
    local lines = {}
    for i, it in ipairs(p.items) do
      lines[i] = ("%s|%s|%s|%s"):format(tostring(it.path), tostring(it.y), tostring(it.speaker), tostring(it.row))
    end
    local audio = T.is_tensor(p.audio) and digest.sha256_tensor(p.audio:contiguous()) or "files"
    return "part:" .. audio .. "\n" .. table.concat(lines, "\n")
  end
  if type(p) == "table" and T.is_tensor(p.x) then
    return "dataset:" .. digest.sha256_tensor(p.x:contiguous()) .. M.canonical(p.y) .. M.canonical(p.classes)
  end
  return "loader"   -- a ready-made loader: identified by the options only
end

-- The identity of a run: { options = {name = canonical text}, data =, model =, processes = }.
function M.identity(o, model, parts, processes)
  local opts = {}
  for k, v in pairs(o) do
    if not NOT_IDENTITY[k] then
      if k == "meta" and type(v) == "table" then
        -- field by field (meta.recipe.optim.lr), so that a refusal names the field that changed;
        -- the recipe minus its seed list: seed 2 of --seeds 1,2 is seed 2 of --seeds 2
        local function flatten(prefix, t)
          for tk, tv in pairs(t) do
            local name = prefix .. "." .. tostring(tk)
            if name ~= "meta.recipe.seeds" and LATER[name] ~= tv then
              if type(tv) == "table" and not T.is_tensor(tv) then flatten(name, tv) else opts[name] = M.canonical(tv) end
            end
          end
        end
        flatten("meta", v)
      elseif LATER[k] ~= v then
        opts[k] = M.canonical(v)
      end
    end
  end
  local data = {}
  for i = 1, 3 do data[i] = split_text(parts[i]) end
  local shapes = {}
  local sd = model:state_dict()
  for _, k in ipairs(model:state_dict_keys()) do shapes[#shapes + 1] = k .. ":" .. table.concat(sd[k]:shape(), "x") end
  return { options = opts, data = digest.sha256(table.concat(data, "\n--\n")),
           model = digest.sha256((model.__name or "?") .. "\n" .. table.concat(shapes, "\n")), processes = processes }
end

-- Why a saved identity is not this run's (a sentence), or nil when it is.
function M.mismatch(saved, now)
  if type(saved) ~= "table" or type(saved.options) ~= "table" then return "it records no run identity" end
  local diffs = {}
  local keys = {}
  for k in pairs(now.options) do keys[k] = true end
  for k in pairs(saved.options) do keys[k] = true end
  local sorted = {}
  for k in pairs(keys) do sorted[#sorted + 1] = k end
  table.sort(sorted)
  for _, k in ipairs(sorted) do
    if saved.options[k] ~= now.options[k] then
      local function short(v) v = v == nil and "unset" or tostring(v); return #v > 60 and (v:sub(1, 57) .. "...") or v end
      diffs[#diffs + 1] = ("option %s was %s, now %s"):format(k, short(saved.options[k]), short(now.options[k]))
    end
  end
  if saved.data ~= now.data then diffs[#diffs + 1] = "the data differ (clips, labels, speakers or the fold)" end
  if saved.model ~= now.model then diffs[#diffs + 1] = "the model's parameters differ (names or shapes)" end
  if saved.processes ~= now.processes then
    diffs[#diffs + 1] = ("it was trained by %s process(es), now %d"):format(tostring(saved.processes), now.processes)
  end
  if #diffs == 0 then return nil end
  if #diffs > 6 then   -- a state from before a format change differs everywhere: the first few say enough
    local n = #diffs
    for i = n, 6, -1 do diffs[i] = nil end
    diffs[6] = ("and %d more"):format(n - 5)
  end
  return table.concat(diffs, "; ")
end

-- Fractional numbers travel as text ("%.17g"): JSON has no NaN or infinity (a diverged
-- validation loss), and the JSON library may print a double with fewer digits than it needs.
local function encode_number(v)
  if math.type(v) == "integer" then return v end
  if v ~= v then return "nan" end
  return ("%.17g"):format(v)
end
local function decode_number(v)
  if type(v) ~= "string" then return v end
  if v == "nan" then return 0 / 0 end
  if v == "inf" then return math.huge elseif v == "-inf" then return -math.huge end
  return tonumber(v) or v
end

local function encode_history(history)
  local out = {}
  for i, row in ipairs(history) do
    local r = {}
    for k, v in pairs(row) do r[k] = type(v) == "number" and encode_number(v) or v end
    out[i] = r
  end
  return out
end

-- The history list, or nil and what is wrong with it.
local function decode_history(list)
  if type(list) ~= "table" then return nil, ("the history is %s, expected a list of epochs"):format(type(list)) end
  local out = {}
  for i, row in ipairs(list) do
    if type(row) ~= "table" then return nil, ("history entry %d is %s, expected a table"):format(i, type(row)) end
    local r = {}
    for k, v in pairs(row) do r[k] = decode_number(v) end
    if type(r.epoch) ~= "number" or math.tointeger(r.epoch) ~= i then
      return nil, ("history entry %d is for epoch %s; expected %d"):format(i, tostring(r.epoch), i)
    end
    r.epoch = math.tointeger(r.epoch)
    out[i] = r
  end
  return out
end

local function put(tensors, prefix, sd)
  for k, t in pairs(sd) do tensors[prefix .. k] = t end
end

-- Writes the state of a run in progress (s: fields below) or finished (s.finished = true: the
-- final weights and the outcome only). Raises with the path on a write failure.
--   s = { identity, epoch, model, opt, sched, ema, best = {f1, epoch, state}, since_best, history,
--         rng = {one state per process}, seconds = {train, cpu}, checkpoint, stop_reason, finished,
--         replicas (data-parallel: each process's digest of its parameters and moments) }
function M.write(path, s)
  local tensors = {}
  put(tensors, "model.", s.model:state_dict())
  local meta = { kind = M.FORMAT, identity = s.identity, epoch = s.epoch, history = encode_history(s.history),
                 seconds = { train = encode_number(s.seconds.train), cpu = encode_number(s.seconds.cpu) },
                 checkpoint = s.checkpoint, finished = s.finished or false, stop_reason = s.stop_reason,
                 best_epoch = s.best.epoch }
  if not s.finished then
    put(tensors, "optim.", s.opt:state_dict())
    if s.ema then
      put(tensors, "ema.", s.ema:state_dict())
      meta.ema_updates = s.ema.updates
    end
    if s.best.state then put(tensors, "best.", s.best.state) end
    if s.best.epoch > 0 then meta.best_f1 = encode_number(s.best.f1) end
    meta.since_best = s.since_best
    meta.sched_step = s.sched and s.sched.last_step or nil
    meta.rng = s.rng
    meta.replicas = s.replicas
  end
  local ok, err = ckpt.save(path, tensors, meta)
  if ok == nil and err then error(("ser.train.fit: could not write the training state %s: %s"):format(path, err), 0) end
end

-- Splits a state's tensors by their prefix.
local function split_tensors(sd)
  local parts = { model = {}, optim = {}, ema = {}, best = {} }
  for k, t in pairs(sd) do
    local prefix, rest = k:match("^(%a+)%.(.+)$")
    if not prefix or not parts[prefix] then return nil, ("an unexpected tensor '%s'"):format(k) end
    parts[prefix][rest] = t
  end
  return parts
end

-- a whole number >= lo (0), given as a number (JSON's numbers; not text)
local function whole(v, lo) return type(v) == "number" and math.tointeger(v) ~= nil and math.tointeger(v) >= (lo or 0) end

-- Reads and checks a state file. Returns nil when there is none; raises (with the path and what
-- is wrong) on a file that is not a training state, is damaged, or belongs to another run.
function M.read(path, identity)
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  local sd, meta = ckpt.load(path)
  local function bad(why)
    error(("ser.train.fit: the training state %s cannot be resumed: %s (delete it, or run without resume to start "
      .. "this run again)"):format(path, why), 0)
  end
  if not sd then bad(tostring(meta)) end
  if type(meta) ~= "table" or meta.kind ~= M.FORMAT then
    bad(("it is not a training state (kind %s, expected %s)"):format(tostring(type(meta) == "table" and meta.kind),
      M.FORMAT))
  end
  local why = M.mismatch(meta.identity, identity)
  if why then
    error(("ser.train.fit: the training state %s belongs to another run (%s); resuming it would mix two runs. "
      .. "Run without resume to train this run from the start (the state is then replaced), or give another "
      .. "output folder"):format(path, why), 0)
  end
  local parts, terr = split_tensors(sd)
  if not parts then bad(terr) end
  if not whole(meta.epoch) then bad(("epoch is %s, expected a whole number"):format(tostring(meta.epoch))) end
  local s = { epoch = math.tointeger(meta.epoch), finished = meta.finished == true, model = parts.model,
              optim = parts.optim, ema = parts.ema, best_state = next(parts.best) and parts.best or nil,
              checkpoint = meta.checkpoint, stop_reason = meta.stop_reason }
  local hist, herr = decode_history(meta.history)
  if not hist then bad(herr) end
  if #hist ~= s.epoch then bad(("it has %d epochs of history for epoch %d"):format(#hist, s.epoch)) end
  s.history = hist
  local secs = type(meta.seconds) == "table" and meta.seconds or {}
  s.seconds = { train = decode_number(secs.train), cpu = decode_number(secs.cpu) }
  if type(s.seconds.train) ~= "number" or type(s.seconds.cpu) ~= "number" then bad("seconds = {train, cpu} is missing") end
  s.best_epoch = whole(meta.best_epoch) and math.tointeger(meta.best_epoch) or nil
  if not s.best_epoch or s.best_epoch > s.epoch then
    bad(("best_epoch is %s, expected a whole number up to %d"):format(tostring(meta.best_epoch), s.epoch))
  end
  if s.stop_reason ~= nil and type(s.stop_reason) ~= "string" then bad("stop_reason is not a string") end
  if s.finished then
    if type(s.stop_reason) ~= "string" then bad("a finished state without stop_reason") end
    return s
  end
  s.best_f1 = s.best_epoch > 0 and decode_number(meta.best_f1) or -math.huge
  if type(s.best_f1) ~= "number" then bad(("best_f1 is %s"):format(tostring(meta.best_f1))) end
  if s.best_epoch > 0 and not s.best_state then bad(("it has a best epoch (%d) but no best weights"):format(s.best_epoch)) end
  if not whole(meta.since_best) then bad(("since_best is %s, expected a whole number"):format(tostring(meta.since_best))) end
  s.since_best = math.tointeger(meta.since_best)
  if meta.sched_step ~= nil and not whole(meta.sched_step) then bad("sched_step is not a whole number") end
  s.sched_step = math.tointeger(meta.sched_step)
  if meta.ema_updates ~= nil and not whole(meta.ema_updates) then bad("ema_updates is not a whole number") end
  s.ema_updates = math.tointeger(meta.ema_updates)
  if type(meta.rng) ~= "table" or #meta.rng < 1 then bad("the generator states (rng) are missing") end
  for i, r in ipairs(meta.rng) do
    if type(r) ~= "table" or #r ~= 6 then bad(("generator state %d is not a list of 6 numbers"):format(i)) end
  end
  s.rng = meta.rng
  s.replicas = meta.replicas
  return s
end

-- This process's digest of what data-parallel processes must hold identically: the parameters
-- and the optimiser's moments and steps (BatchNorm running statistics may differ: per process).
function M.replica_digest(params, opt)
  local parts = {}
  for i, p in ipairs(params) do parts[i] = digest.sha256_tensor(p:contiguous()) end
  local sd = opt:state_dict()
  local keys = {}
  for k in pairs(sd) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. digest.sha256_tensor(sd[k]:contiguous()) end
  return digest.sha256(table.concat(parts, "\n"))
end

-- Raises unless sd has exactly ref's names with ref's shapes (the best weights of a state, which
-- are loaded only when training ends: checked when it starts).
function M.check_like(sd, ref, what)
  for k, t in pairs(ref) do
    local u = sd[k]
    if not T.is_tensor(u) then error(("%s: '%s' is missing"):format(what, k), 0) end
    if table.concat(u:shape(), ",") ~= table.concat(t:shape(), ",") then
      error(("%s: '%s' has shape [%s], the model's is [%s]"):format(what, k, table.concat(u:shape(), ","),
        table.concat(t:shape(), ",")), 0)
    end
  end
  for k in pairs(sd) do
    if ref[k] == nil then error(("%s: unexpected entry '%s'"):format(what, k), 0) end
  end
end

-- Puts a state read by M.read into the run's objects: t = { model, opt, sched, ema, rank }. The
-- schedule comes after the optimiser (it sets the exact double lr and beta1 of its step); the
-- best weights, loaded only when training ends, are checked now. Raises on anything that does
-- not fit (a model's or optimiser's own message).
function M.apply(s, t)
  t.model:load_state_dict(s.model)
  if s.finished then return end
  t.opt:load_state_dict(s.optim)
  if t.sched then t.sched:load_state_dict({ last_epoch = T.new({ s.sched_step or 0 }) }) end
  if t.ema then t.ema:load_state_dict(s.ema, s.ema_updates)
  elseif next(s.ema) then error("the state has a weight average (ema.*) but this run keeps none", 0) end
  if s.best_state then M.check_like(s.best_state, t.model:state_dict(), "the best weights") end
  local r = s.rng[(t.rank or 0) + 1]
  if r == nil then error(("no generator state for process %d (the state has %d)"):format(t.rank or 0, #s.rng), 0) end
  base.set_rng_state(r)
end

M.get_rng = base.get_rng_state
M.set_rng = base.set_rng_state

return M
