-- ser.train.fit(model, { train, val, test }, opts) -> model, history, result
--
-- The training loop of the main job: AdamW with OneCycleLR (or cosine /
-- constant), class weights from the training label counts, label smoothing,
-- gradient clipping, early stopping on validation weighted F1 with patience,
-- the best weights kept in memory (and written with ser.save when
-- opts.checkpoint is given) and restored before the final evaluation.
-- Optional regularisers: mixup (opts.mixup = alpha) and an exponential moving
-- average of the weights (opts.ema = decay), which is then what is validated.
-- Knowledge distillation from trained teachers: opts.distill (see ser.train.distill).
-- A NaN/inf loss or Ctrl-C stops training cleanly; the best weights are kept.
-- Under mpirun (ser.dist) it trains data-parallel: every process takes its share of each
-- global batch (opts.batch per process), the gradients are summed by one allreduce per
-- step (ser.train.parallel), rank 0 validates, prints and writes the checkpoint, and
-- every process follows its decision to stop (docs/distributed.md).
-- With opts.state = path the whole training state is written after every epoch
-- (ser.train.state), and opts.resume = true continues a run from it: an interrupted
-- run ends with the weights the uninterrupted one would have (docs/train.md).
local base = require "ser.core.base"
local cnn = require "ser.core.nn_cnn"
local T = require "ser.tensor"
local nn = require "ser.nn"
local optim = require "ser.optim"
local metrics = require "ser.metrics"
local recipe = require "ser.recipe"
local options = require "ser.options"
local progress = require "ser.train.progress"
local batches = require "ser.train.batches"
local evaluate = require "ser.train.evaluate"
local checkpoint = require "ser.train.checkpoint"
local distill = require "ser.train.distill"
local ensemble = require "ser.train.ensemble"
local parallel = require "ser.train.parallel"
local trainstate = require "ser.train.state"
local dist = require "ser.dist"
local gather = require("ser.core.data").gather

local M = {}

M.defaults = {
  epochs = 35, batch = 8, lr = 1e-3, weight_decay = 1e-4, schedule = "onecycle",
  label_smoothing = 0.1, class_weights = true, patience = 10, clip = 5.0, amp = false,
  seed = nil, checkpoint = nil, meta = nil, embeddings = false, progress = "auto",
  min_epochs = "auto", name = nil, mixup = 0, ema = false, ema_bn = "average", ema_bn_batches = 0,
  distill = nil,
  sync_bn = false, grad_compression = "none", data_parallel = true, state = nil, resume = false,
}

-- Every option fit knows (those defaulting to nil included).
M.known = {}
for _, k in ipairs { "epochs", "batch", "lr", "weight_decay", "schedule", "label_smoothing", "class_weights",
  "patience", "clip", "amp", "seed", "checkpoint", "meta", "embeddings", "progress", "min_epochs", "name",
  "mixup", "ema", "ema_bn", "ema_bn_batches", "distill", "sync_bn", "grad_compression", "data_parallel", "state", "resume" } do
  M.known[k] = true
end

-- Value rules are ser.recipe's (one place): a kind per numeric option.
local CHECKS = {
  epochs = "posint", batch = "posint", lr = "posnum", weight_decay = "nonneg",
  label_smoothing = "unit", patience = "posint", clip = "nonneg_or_false", mixup = "nonneg",
  ema = "unit_or_false", ema_bn_batches = "natural",
}

local function check_opts(opts)
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  local known = {}
  for k in pairs(M.known) do known[k] = true end
  for k in pairs(M.passthrough) do known[k] = true end
  options.check(opts, known, "ser.train.fit", 3)
  for k, v in pairs(opts or {}) do o[k] = v end
  for k, kind in pairs(CHECKS) do
    local bad = recipe.expect({ kind = kind }, o[k])
    if bad then
      error(("ser.train.fit: option %s = %s is invalid (expected %s)"):format(k, tostring(o[k]), bad), 3)
    end
  end
  local bad_ema_bn = recipe.expect(recipe.fields["ema_bn"], o.ema_bn)
  if bad_ema_bn then
    error(("ser.train.fit: option ema_bn = %s is invalid (expected %s)"):format(tostring(o.ema_bn), bad_ema_bn), 3)
  end
  local bad_schedule = recipe.expect(recipe.fields.schedule, o.schedule)
  if bad_schedule then
    error(("ser.train.fit: schedule '%s' is unknown (expected %s)"):format(tostring(o.schedule), bad_schedule), 3)
  end
  -- With OneCycle the validation scores of the warm-up and high-LR epochs are
  -- noisy (BatchNorm statistics chase a moving model); a lucky early epoch then
  -- ends the run before the annealing half, where the real gains are (measured
  -- on RAVDESS: stopped at epoch 15 of 30 with its best at epoch 5). Half the
  -- run was not enough either: an augmented 60-epoch CNN2D run stopped at
  -- epoch 35 with its best (43.8 %) at epoch 25, while its seed-1 twin kept
  -- improving until epoch 58 (60.8 %). So by default early stopping may end a
  -- OneCycle run only in its last fifth, when the LR is below ~20 % of its peak.
  if o.min_epochs == "auto" then
    o.min_epochs = o.schedule == "onecycle" and math.ceil(0.8 * o.epochs) or 1
  elseif type(o.min_epochs) ~= "number" or o.min_epochs < 1 or o.min_epochs ~= math.floor(o.min_epochs) then
    error(("ser.train.fit: option min_epochs = %s is invalid (expected \"auto\" or a whole number >= 1)")
      :format(tostring(o.min_epochs)), 3)
  end
  if not ({ none = true, bf16 = true, fp16 = true })[o.grad_compression] then
    error(("ser.train.fit: grad_compression '%s' is unknown (expected none, bf16 or fp16)"):format(
      tostring(o.grad_compression)), 3)
  end
  if type(o.sync_bn) ~= "boolean" then
    error(("ser.train.fit: option sync_bn = %s is invalid (expected true or false)"):format(tostring(o.sync_bn)), 3)
  end
  if o.state ~= nil and (type(o.state) ~= "string" or o.state == "") then
    error(("ser.train.fit: option state = %s is invalid (expected the path of the training-state file)")
      :format(tostring(o.state)), 3)
  end
  if type(o.resume) ~= "boolean" then
    error(("ser.train.fit: option resume = %s is invalid (expected true or false)"):format(tostring(o.resume)), 3)
  end
  if o.resume and not o.state then
    error("ser.train.fit: resume = true needs option state (the training-state file to resume from)", 3)
  end
  if not ({ auto = true, bar = true, epoch = true, quiet = true })[o.progress] then
    error(("ser.train.fit: progress '%s' is unknown (expected auto, bar, epoch or quiet)"):format(
      tostring(o.progress)), 3)
  end
  return o
end

-- Options handed through to the data loaders (see ser.train.batches).
M.passthrough = { features = true, augment = true, seconds = true, sr = true, classes = true, trim = true,
  normalize = true }

-- w_c = N / (C * n_c): the usual "balanced" weights; a class absent from the
-- training data gets weight 0 (it cannot be learned) and a warning.
function M.class_weights(labels, n_classes, warn)
  local counts = {}
  for c = 1, n_classes do counts[c] = 0 end
  for _, y in ipairs(labels) do counts[y] = counts[y] + 1 end
  local w = {}
  for c = 1, n_classes do
    if counts[c] == 0 then
      w[c] = 0
      if warn then warn(("class %d has no training examples; its weight is 0"):format(c)) end
    else
      w[c] = #labels / (n_classes * counts[c])
    end
  end
  return w, counts
end

local argmax_rows = evaluate.argmax_rows
M.argmax_rows = argmax_rows

-- Gamma(a) and Beta(a, a) draws from ser's seeded generator (Marsaglia and Tsang's
-- method; a < 1 through Gamma(a + 1) * U^(1/a)), for mixup's mixing weight.
local function gamma_draw(T, a)
  if a < 1 then return gamma_draw(T, a + 1) * T.rand({ 1 }):item() ^ (1 / a) end
  local d = a - 1 / 3
  local c = 1 / math.sqrt(9 * d)
  while true do
    local z = T.randn({ 1 }):item()
    local v = (1 + c * z) ^ 3
    if v > 0 then
      local u = T.rand({ 1 }):item()
      if u > 0 and math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v) then return d * v end
    end
  end
end

function M.beta_draw(a)
  local x, y = gamma_draw(T, a), gamma_draw(T, a)
  return x / (x + y)
end

-- mixup (Zhang et al. 2018): each example is blended with its neighbour in the
-- (already shuffled) batch, x' = lam x + (1 - lam) x_next, and the loss is blended
-- the same way. lam ~ Beta(alpha, alpha) folded to >= 0.5, so the first label
-- stays the dominant one (the running accuracy counts against it).
-- Returns x', the rolled labels and lam; nil when the batch has one example.
local function mixup_batch(x, y, alpha)
  local n = x:shape()[1]
  if n < 2 then return nil end
  local lam = M.beta_draw(alpha)
  lam = math.max(lam, 1 - lam)
  local rolled = T.cat({ x:narrow(1, 2, n - 1), x:narrow(1, 1, 1) }, 1)
  local ys = batches.labels(y)
  local yr = {}
  for i = 1, n do yr[i] = ys[i % n + 1] end
  return x * lam + rolled * (1 - lam), T.new(yr), lam
end

-- Deep copy of the model's state (parameters and buffers), for "best so far".
local function snapshot(model)
  local copy = {}
  for k, t in pairs(model:state_dict()) do copy[k] = t:clone() end
  return copy
end

M.embed, M.evaluate, M.report = evaluate.embed, evaluate.evaluate, evaluate.report
local report = evaluate.report
-- Late fusion of models evaluated on the same clips (see ser.train.ensemble).
M.ensemble = ensemble.ensemble
-- Checkpoints: written by fit, read for scoring with the inputs they were trained on.
M.save_checkpoint = checkpoint.save
M.load_checkpoint = checkpoint.load
M.checkpoint_loader = checkpoint.loader
M.checkpoint_features = checkpoint.features
M.checkpoint_inputs = checkpoint.inputs
M.checkpoint_recipe = checkpoint.recipe
M.transform = checkpoint.transform
-- The labels of a batch as a Lua array (from a tensor or an array).
M.labels = batches.labels

-- The training state at path for this run (ser.train.state.read): nil when there is none.
-- Under mpirun rank 0 reads and checks it first and every process follows its verdict; then
-- each process reads the file itself (it must be on a file system they all see, as the corpus is).
function M.read_state(path, identity, par, rank)
  if not par then return trainstate.read(path, identity) end
  local verdict = ""
  local s
  if rank == 0 then
    local ok, r = pcall(trainstate.read, path, identity)
    if not ok then verdict = "error:" .. tostring(r)
    elseif r == nil then verdict = "none"
    else verdict, s = "ok", r end
  end
  verdict = dist.broadcast_string(verdict, 0)
  if verdict:sub(1, 6) == "error:" then error(verdict:sub(7), 0) end
  if verdict == "none" then return nil end
  local failed
  if rank ~= 0 then
    local ok, r = pcall(trainstate.read, path, identity)
    if ok and r then s = r else failed = ok and "the file is missing" or tostring(r) end
  end
  if dist.any(failed ~= nil) then
    error(failed and ("ser.train.fit: process %d could not read the training state %s that process 0 read (%s); "
      .. "the state must be on a file system every process sees"):format(rank, path, failed)
      or ("ser.train.fit: another process could not read the training state %s; see its message"):format(path), 0)
  end
  return s
end

-- max_lr: o.lr, or one peak per parameter group (a model's param_groups).
local function make_scheduler(opt, o, steps_per_epoch, max_lr)
  if o.schedule == "onecycle" then
    return optim.OneCycleLR(opt, { max_lr = max_lr or o.lr, total_steps = o.epochs * steps_per_epoch })
  elseif o.schedule == "cosine" then
    -- Stepped once per epoch (T_max in epochs), the usual PyTorch use.
    return optim.CosineAnnealingLR(opt, { T_max = o.epochs }), "epoch"
  end
  return nil
end

function M.fit(model, parts, opts)
  local F = nn.functional
  if not nn.is_module(model) then
    error(("ser.train.fit: expected an nn module as the first argument, got %s"):format(type(model)), 2)
  end
  if type(parts) ~= "table" or parts[1] == nil then
    error("ser.train.fit: expected { train, val, test } as the second argument (val and test may be nil)", 2)
  end
  local o = check_opts(opts)
  local rank, size = dist.init()
  -- data_parallel = false under mpirun: this process trains the run alone (a sweep's share)
  if o.data_parallel == false then rank, size = 0, 1 end
  local par, root = size > 1, rank == 0
  local mode = o.progress
  if mode == "auto" then mode = progress.is_terminal() and "bar" or "epoch" end
  local show = progress.new(dist.is_root() and mode or "quiet")
  if o.seed then base.manual_seed(o.seed) end
  if par then
    if o.distill then
      error("ser.train.fit: distill is not supported in data-parallel training (under mpirun) yet; "
        .. "run the distillation on one process", 2)
    end
    -- every process starts from rank 0's weights; then each draws its own dropout and
    -- mixup noise (the batch order does not use this generator: see ser.train.batches)
    dist.broadcast_state(model)
    if rank > 0 then base.manual_seed(math.floor(T.rand({ 1 }):item() * 2 ^ 31) + 7919 * rank) end
    show.message(("data-parallel: %d processes (%s), batch %d per process, %d per step%s%s"):format(size,
      dist.library() or "MPI", o.batch, o.batch * size, o.sync_bn and ", synchronised BatchNorm" or "",
      o.grad_compression ~= "none" and (", gradients sent as " .. o.grad_compression) or ""))
  end

  local loaders = batches.loaders(parts, o, model, par and { rank = rank, size = size } or nil)
  local train, val, test = loaders.train, loaders.val, loaders.test
  local classes = loaders.classes
  local n_classes = #classes
  if batches.count(train) == 0 then error("ser.train.fit: the training split is empty", 2) end

  local weights = nil
  if o.class_weights then
    weights = T.new((M.class_weights(batches.all_labels(train), n_classes, show.message)))
  end
  local function criterion(logits, y)
    return F.cross_entropy(logits, y, { weight = weights, label_smoothing = o.label_smoothing })
  end

  -- Distillation: teachers checked against the classes and the held-out speakers; their
  -- soft targets computed once, before training, or (consistent) per batch as it is trained.
  local teach, soft
  if o.distill then
    teach = distill.check(o.distill, classes)
    if o.mixup > 0 and not teach.consistent then
      error("ser.train.fit: distill and mixup cannot be combined unless distill.consistent = true "
        .. "(a mixed clip has no precomputed teacher target)", 2)
    end
    -- the corpus parts the student is evaluated on (in-memory splits have no speakers)
    distill.check_speakers(teach, { val and val.part or nil, test and test.part or nil }, show.message)
    if teach.consistent then
      distill.check_inputs(teach, train)
      show.message(("distilling from %d teacher(s), alpha %g, temperature %g; consistent: the teachers label every "
        .. "training batch as the student sees it"):format(#teach.teachers, teach.alpha, teach.temperature))
    else
      local agree
      soft, agree = distill.soft_targets(teach, train, n_classes)
      for _, t in ipairs(teach.teachers) do t.model = nil end   -- their targets are all fit needs of them
      show.message(("distilling from %d teacher(s), alpha %g, temperature %g; the teachers label %d of %d training clips correctly")
        :format(#teach.teachers, teach.alpha, teach.temperature, agree, soft:size(1)))
    end
  end

  local params = model:parameters()
  -- A model may split its parameters into groups with their own learning rates (a fine-tuned
  -- encoder's blocks below its head's): model:param_groups(lr) -> { { params =, lr = }, ... }.
  local groups = type(model.param_groups) == "function" and model:param_groups(o.lr) or nil
  local opt = optim.AdamW(groups or params, { lr = o.lr, weight_decay = o.weight_decay })
  local peaks
  if groups then
    peaks = {}
    for g, grp in ipairs(groups) do peaks[g] = grp.lr or o.lr end
  end
  local n_batches = batches.count(train)
  local sched, sched_unit = make_scheduler(opt, o, n_batches, peaks)
  local prev_amp = cnn.set_amp(o.amp)
  -- ema = 0 means off, like false (a decay of 0 would only copy the weights)
  local ema = (o.ema and o.ema > 0) and optim.EMA(model, { decay = o.ema }) or nil
  local step = par and parallel.new(params, o.grad_compression) or nil

  -- What the checkpoint records of the training data besides the options.
  local record = { features = train.feature_spec, train_speakers = train.part and train.part:speakers() or train.speakers,
                   distill = teach and distill.record(teach) or nil }

  local history, best = {}, { f1 = -math.huge, epoch = 0 }
  local stop_reason, since_best = "completed", 0
  local t_start = os.clock()
  local now = progress.now
  local wall0 = now()

  -- The training state (opts.state): what this run is, and what an earlier attempt left.
  local identity = o.state and trainstate.identity(o, model, parts, size) or nil
  local first_epoch, prior, finished = 1, { train = 0, cpu = 0 }, false
  if o.resume then
    local s = M.read_state(o.state, identity, par, rank)
    if s then
      -- the file's tensors must fit this model and optimiser: a damaged file fails here, named
      local ok, err = pcall(trainstate.apply, s, { model = model, opt = opt, sched = sched, ema = ema, rank = rank })
      if par then ok = not dist.any(not ok) and ok end
      if not ok then
        error(("ser.train.fit: the training state %s cannot be resumed: %s (delete it, or run without resume to "
          .. "start this run again)"):format(o.state, tostring(err or "another process could not load it")), 2)
      end
      history, prior = s.history, s.seconds
      if s.finished then
        finished, stop_reason, best.epoch = true, s.stop_reason, s.best_epoch
        show.message(("resumed %s: this run finished (%s); scoring its final model"):format(o.state, stop_reason))
      else
        best = { f1 = s.best_f1, epoch = s.best_epoch, state = s.best_state }
        since_best, first_epoch = s.since_best, s.epoch + 1
        show.message(("resumed %s: %d of %d epochs done, continuing at epoch %d"):format(o.state, s.epoch, o.epochs,
          first_epoch))
      end
    else
      show.message(("no training state at %s yet: starting at epoch 1"):format(o.state))
    end
  end

  -- After a completed epoch: every process's generator (they differ under mpirun), and the
  -- check that the processes hold the same weights and moments; rank 0 writes.
  local function save_state(epoch)
    local rngs = par and dist.allgather_values(base.get_rng_state()) or { base.get_rng_state() }
    local replicas = par and dist.allgather_string(trainstate.replica_digest(params, opt)) or nil
    if replicas then
      for r = 2, #replicas do
        if replicas[r] ~= replicas[1] then
          show.message(("warning: after epoch %d process %d holds other weights or optimiser moments than process 0"
            .. " (a data-parallel bug); the state records rank 0's"):format(epoch, r - 1))
          break
        end
      end
    end
    if not root then return end
    trainstate.write(o.state, { identity = identity, epoch = epoch, model = model, opt = opt, sched = sched,
      ema = ema, best = best, since_best = since_best, history = history, rng = rngs, replicas = replicas,
      seconds = { train = prior.train + now() - wall0, cpu = prior.cpu + os.clock() - t_start },
      checkpoint = o.checkpoint })
  end

  -- The EMA's weights into the model. With ema_bn = "recompute" its BatchNorm statistics are
  -- then gathered afresh under them from the batches of `epoch` (the first ema_bn_batches of
  -- them; 0: all): a learnt front end's averaged filters give activations at another level
  -- than the averaged running statistics (measured: docs/results.md). The generator is put
  -- back, so training goes on as it would without.
  local function averaged_weights(epoch)
    model:load_state_dict(ema:state_dict())
    if o.ema_bn ~= "recompute" then return end
    local rng = base.get_rng_state()
    local each, limit, n = batches.iterate(train, math.max(epoch, 1)), o.ema_bn_batches, 0
    optim.update_bn(model, function()
      n = n + 1
      if limit == 0 or n <= limit then return each() end
    end)
    base.set_rng_state(rng)
  end

  -- One epoch of training; returns its row or raises {stop = reason}.
  local function train_epoch(epoch)
    model:train()
    local t0, seen, correct, loss_sum, label_loss_sum = now(), 0, 0, 0, 0
    local preds, targets = {}, {}
    local lr = opt:get_lr()
    local i = 0
    local comm0 = step and step.comm_seconds
    if step then dist.sync_batchnorm(o.sync_bn) end
    for b in batches.iterate(train, epoch) do
      i = i + 1
      if step then dist.activity(("training epoch %d, batch %d/%d"):format(epoch, i, n_batches)) end
      opt:zero_grad()
      local x, y_mix, lam, label_lv
      if o.mixup > 0 then x, y_mix, lam = mixup_batch(b.x, b.y, o.mixup) end
      local logits = model(x or b.x)
      local loss = criterion(logits, b.y)
      if y_mix then loss = loss * lam + criterion(logits, y_mix) * (1 - lam) end
      if teach then
        -- The loss on the labels alone (mixed ones with mixup), comparable with the
        -- validation loss; the objective below adds the distillation term, on another scale.
        label_lv = loss:item()
        local q = soft and gather(soft, b.index)
          or distill.batch_targets(teach, x or b.x, n_classes)
        loss = loss * (1 - teach.alpha) + distill.loss(logits, q, teach.temperature) * teach.alpha
      end
      local lv = loss:item()
      local ys = batches.labels(b.y)
      local p = argmax_rows(logits:totable())
      local right = 0
      for k = 1, #ys do
        if p[k] == ys[k] then right = right + 1 end
      end
      local n_seen, stop_asked = #ys, nil
      if step then
        -- the gradient of the local numerator; reduce() turns the sum into the global mean's
        local d = parallel.denominator(ys, weights)
        local scaled = loss * d
        scaled:backward()
        lv, n_seen, right, stop_asked = step:reduce(d, lv, #ys, right, base.interrupted(), now)
      end
      if lv ~= lv or lv == math.huge or lv == -math.huge then
        error({ stop = ("loss is %s at epoch %d, batch %d/%d; training stopped, best weights (epoch %d) kept")
          :format(tostring(lv), epoch, i, n_batches, best.epoch) })
      end
      if not step then loss:backward() end
      -- The norm is computed even without clipping: a NaN/inf gradient stops
      -- training before the step, so the weights stay finite.
      local norm = optim.clip_grad_norm(params, o.clip or math.huge)
      if norm ~= norm or norm == math.huge then
        error({ stop = ("gradient norm is %s at epoch %d, batch %d/%d; training stopped, best weights (epoch %d) kept")
          :format(tostring(norm), epoch, i, n_batches, best.epoch) })
      end
      lr = opt:get_lr()
      opt:step()
      if ema then ema:update() end
      if sched and sched_unit ~= "epoch" then sched:step() end
      for k = 1, #ys do preds[#preds + 1], targets[#targets + 1] = p[k], ys[k] end
      correct = correct + right
      seen = seen + n_seen
      loss_sum = loss_sum + lv * n_seen
      if label_lv then label_loss_sum = label_loss_sum + label_lv * #ys end
      local dt = math.max(now() - t0, 1e-9)
      show.batch(epoch, o.epochs, i, n_batches, loss_sum / seen, correct / seen, seen / dt,
        dt / i * (n_batches - i))
      -- under mpirun every process stops at the same batch: the flag travelled with the gradients
      if (step and stop_asked) or (not step and base.interrupted()) then
        error({ stop = ("interrupted at epoch %d, batch %d/%d; best weights (epoch %d) kept"):format(
          epoch, i, n_batches, best.epoch), interrupt = true })
      end
    end
    if sched and sched_unit == "epoch" then sched:step() end
    if step then
      dist.sync_batchnorm(false)   -- validation and evaluation run on one process at a time
      preds, targets = parallel.gather_predictions(preds, targets, n_classes)
    end
    local rep = metrics.report(preds, targets, classes)
    return { epoch = epoch, train_loss = loss_sum / seen, train_acc = correct / seen,
             train_label_loss = teach and label_loss_sum / seen or nil,
             train_f1 = rep.weighted_f1, lr = lr, t0 = t0,
             comm_seconds = step and step.comm_seconds - comm0 or nil }
  end

  local function run()
    for epoch = first_epoch, o.epochs do
      local row = train_epoch(epoch)
      local note = ""
      -- With ema the averaged weights are the ones validated, kept as best and
      -- finally restored; training continues from the raw weights.
      -- under mpirun rank 0 alone validates and decides; the others follow below
      local validate = val and root
      local raw = ema and validate and snapshot(model)
      if raw then averaged_weights(epoch) end
      if validate then
        local r = report(M.evaluate(model, val, criterion), classes)
        row.val_loss, row.val_acc, row.val_f1 = r.loss, r.accuracy, r.weighted_f1
        if r.weighted_f1 > best.f1 then
          best = { f1 = r.weighted_f1, epoch = epoch, state = snapshot(model) }
          since_best = 0
          note = "  * best"
          if o.checkpoint and root then checkpoint.save(o.checkpoint, model, classes, o, epoch, record) end
        else
          since_best = since_best + 1
        end
      end
      if raw then model:load_state_dict(raw) end
      row.seconds = now() - row.t0
      row.t0 = nil
      history[#history + 1] = row
      show.epoch(row, o.epochs, note)
      local stop = validate and since_best >= o.patience and epoch >= o.min_epochs
      if par then stop = dist.any(stop) end
      if stop then
        stop_reason = ("early stop: no better validation weighted F1 for %d epochs (best %.3f at epoch %d)")
          :format(o.patience, best.f1, best.epoch)
        return
      end
      if o.state then save_state(epoch) end
    end
  end

  -- Ctrl-C sets a flag (ser.catch_interrupt) polled after every batch, so the
  -- batch in flight finishes and the run ends like an early stop.
  -- (a finished run being resumed trains nothing: its final weights are loaded)
  base.catch_interrupt(true)
  local ok, err = true, nil
  if not finished then ok, err = pcall(run) end
  base.catch_interrupt(false)
  if par then dist.sync_batchnorm(false) end
  -- Ctrl-C leaves the last epoch's state as it is: a rerun with resume continues from there
  local interrupted = false
  if not ok then
    if type(err) == "table" and err.stop then
      stop_reason, interrupted = err.stop, err.interrupt == true
    elseif type(err) == "string" and err:find("interrupted!", 1, true) then
      -- lua.c's SIGINT hook raises "interrupted!" between instructions: the
      -- interrupted batch is abandoned, the run ends as a clean stop.
      stop_reason = ("interrupted during epoch %d; best weights (epoch %d) kept"):format(#history + 1, best.epoch)
      interrupted = true
    else
      cnn.set_amp(prev_amp)
      error(err, 0)
    end
  end
  if par then
    -- rank 0 knows why training ended and holds the best weights: every process takes both
    dist.activity("agreeing on the final weights")
    stop_reason = dist.broadcast_string(stop_reason, 0)
  end
  if not finished then
    show.message(stop_reason)
    if best.state then model:load_state_dict(best.state)
    elseif ema then averaged_weights(#history) end
  end
  if par then dist.broadcast_state(model) end
  if not finished and not val and o.checkpoint and root then
    checkpoint.save(o.checkpoint, model, classes, o, #history, record)
  end
  local train_seconds, cpu_seconds = prior.train + now() - wall0, prior.cpu + os.clock() - t_start
  if o.state and root and not finished and not interrupted then
    trainstate.write(o.state, { identity = identity, epoch = #history, model = model, best = best, history = history,
      seconds = { train = train_seconds, cpu = cpu_seconds }, checkpoint = o.checkpoint, stop_reason = stop_reason,
      finished = true })
  end

  -- the final scores in full precision, as every later reader of the checkpoint computes them
  -- (predict.lua, ensemble.lua, the C API, ONNX): amp speeds training, it does not score
  cnn.set_amp(prev_amp)
  local result = { stop_reason = stop_reason, best_epoch = best.epoch, epochs = #history,
                   train_seconds = train_seconds, cpu_seconds = cpu_seconds, splits = {},
                   processes = size, comm_seconds = step and step.comm_seconds or nil }
  for _, name in ipairs { "val", "test" } do
    local l = loaders[name]
    if l and batches.count(l) > 0 then
      result.splits[name] = report(M.evaluate(model, l, criterion, { embeddings = o.embeddings }), classes)
    end
  end
  local main = result.splits.test or result.splits.val
  if main then
    for k, v in pairs(main) do result[k] = v end
    result.split = result.splits.test and "test" or "val"
  end
  return model, history, result
end

return M
