-- Training progress display. On a terminal: one line per batch rewritten in
-- place with \r (bar, i/N, loss, running accuracy, clips/s, ETA). Otherwise
-- (a log file, a pipe): one line per epoch, so logs stay readable.
local cnn = require "ser.core.nn_cnn"
local fs = require "ser.core.fs"

local M = {}

-- Wall-clock seconds with sub-second resolution (a monotonic clock): Lua's os.time counts
-- whole seconds and os.clock the CPU time of all threads.
M.now = cnn.monotonic

-- True when stdout is a terminal.
function M.is_terminal()
  return fs.isatty(1)
end

local function clock(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60) end
  return ("%d:%02d"):format(s // 60, s % 60)
end
M.clock = clock

-- A progress reporter for one run. mode: "bar", "epoch" or "quiet".
function M.new(mode, out)
  out = out or io.stdout
  local self = { mode = mode, out = out, width = 0 }

  -- Called after each training batch.
  -- Redraws at most ten times a second (and always on the last batch).
  local last_draw = -math.huge
  function self.batch(epoch, epochs, i, n, loss, acc, clips_per_s, eta)
    if mode ~= "bar" then return end
    local t = M.now()
    if i < n and t - last_draw < 0.1 then return end
    last_draw = t
    local w = 20
    local filled = math.floor(w * i / n + 0.5)
    local line = ("epoch %d/%d [%s%s] %d/%d loss %.4f acc %5.1f%% %.1f clips/s ETA %s"):format(
      epoch, epochs, ("="):rep(filled), ("."):rep(w - filled), i, n, loss, 100 * acc, clips_per_s, clock(eta))
    local pad = math.max(0, self.width - #line)
    self.width = #line
    out:write("\r", line, (" "):rep(pad))
    out:flush()
  end

  -- Called after each epoch with its history row.
  function self.epoch(h, epochs, note)
    if mode == "quiet" then return end
    if mode == "bar" then out:write("\r", (" "):rep(self.width), "\r") self.width = 0 end
    local val = h.val_loss and ("val loss %.4f acc %5.1f%% wF1 %.3f"):format(h.val_loss, 100 * h.val_acc, h.val_f1)
      or "no validation"
    -- a distilled model's objective sits on another scale; its loss on the labels compares with val's
    local labels = h.train_label_loss and (" (labels %.4f)"):format(h.train_label_loss) or ""
    out:write(("epoch %3d/%d  train loss %.4f%s acc %5.1f%% wF1 %.3f | %s | lr %.2e | %.1f s%s\n"):format(
      h.epoch, epochs, h.train_loss, labels, 100 * h.train_acc, h.train_f1, val, h.lr, h.seconds, note or ""))
    out:flush()
  end

  function self.message(text)
    if mode == "quiet" then return end
    if mode == "bar" and self.width > 0 then out:write("\r", (" "):rep(self.width), "\r") self.width = 0 end
    out:write(text, "\n")
    out:flush()
  end
  return self
end

return M
