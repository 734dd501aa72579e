-- ser.plot: the charts of an experiment, drawn by gnuplot (pngcairo) into PNG files.
-- Every function takes {out = "path.png", title =, width =, height =} and returns out.
local gp = require "ser.plot.gnuplot"

local M = {}

local str, block = gp.str, gp.block

local function check_list(v, what, fname)
  if type(v) ~= "table" or #v == 0 then
    error(("plot.%s: %s must be a non-empty list, got %s"):format(fname, what,
      type(v) == "table" and "an empty table" or type(v)), 3)
  end
end

local function number_or_nil(v, what, fname)
  if v ~= nil and type(v) ~= "number" then
    error(("plot.%s: %s must be a number, got %s %s"):format(fname, what, type(v), tostring(v)), 3)
  end
  return v
end

local common = table.concat({
  "set border lw 1.2 lc rgb '#444444'",
  "set grid lc rgb '#dddddd' lw 1",
  "set key opaque box lc rgb '#cccccc'",
  "set tics textcolor rgb '#333333'",
}, "\n")

-- curves(history, {title, out}): loss (train/val) and F1 + accuracy (train/val) per epoch.
-- history: list of {epoch, train_loss, val_loss, train_acc, val_acc, train_f1, val_f1, lr, seconds}
-- and, for a distilled model, train_label_loss: then the solid train line is that loss on the
-- true labels (the one validation measures) and the objective with the distillation term,
-- which sits on another scale, is drawn dashed.
function M.curves(history, opts)
  local out, w, h = gp.check_out(opts, "curves", 1400, 520)
  check_list(history, "history", "curves")
  local rows, best, best_f1 = {}, nil, -math.huge
  local has = {}
  for i, e in ipairs(history) do
    if type(e) ~= "table" then error(("plot.curves: history[%d] must be a table, got %s"):format(i, type(e)), 2) end
    local epoch = number_or_nil(e.epoch, ("history[%d].epoch"):format(i), "curves") or i
    local r = { epoch }
    for k, key in ipairs({ "train_loss", "val_loss", "train_f1", "val_f1", "train_acc", "val_acc",
      "train_label_loss" }) do
      local v = number_or_nil(e[key], ("history[%d].%s"):format(i, key), "curves")
      if v ~= nil then has[key] = true end
      r[k + 1] = v or false -- written as NaN (gnuplot's missing point), so later columns keep their place
    end
    if e.val_f1 and e.val_f1 > best_f1 then best, best_f1 = epoch, e.val_f1 end
    rows[i] = r
  end
  if not has.train_loss and not has.val_loss then
    error("plot.curves: history has neither train_loss nor val_loss in any epoch", 2)
  end
  -- past ~40 epochs the markers touch and hide the dashes that tell accuracy and the
  -- distillation objective apart, so long runs are drawn as plain lines
  local style = #history > 40 and "lines" or "linespoints pt 7 ps 0.6"
  local function series(col, key, title, color, dash)
    if not has[key] then return nil end
    return ("$h using 1:%d with %s lw 2.2 dt %d lc rgb '%s' title %s")
      :format(col, style, dash, color, str(title))
  end
  local blue, orange = gp.palette[1], gp.palette[2]
  local loss = {}
  local train_lines = has.train_label_loss
    and { series(8, "train_label_loss", "train (true labels)", blue, 1),
          series(2, "train_loss", "train objective (with distillation)", blue, 2) }
    or { series(2, "train_loss", "train", blue, 1) }
  for _, s in ipairs(train_lines) do loss[#loss + 1] = s end
  loss[#loss + 1] = series(3, "val_loss", "validation", orange, 1)
  local score = {}
  for _, s in ipairs({ series(4, "train_f1", "train F1", blue, 1), series(5, "val_f1", "validation F1", orange, 1),
    series(6, "train_acc", "train accuracy", blue, 2), series(7, "val_acc", "validation accuracy", orange, 2) }) do
    score[#score + 1] = s
  end
  local script = {
    block("h", rows), common,
    ("set multiplot layout 1,2 title %s font ',15'"):format(str(opts.title or "Training curves")),
    -- headroom above the data holds the legend, so it never covers a curve
    "set xlabel 'epoch'", "set key top right horizontal", "set offsets 0, 0, graph 0.2, 0",
    #history < 12 and "set xtics 1" or "set xtics autofreq",
    "set ylabel 'loss'", "set title 'Loss'",
    "plot " .. table.concat(loss, ", "),
    "set ylabel 'score'", "set title 'Weighted F1 and accuracy'", "set offsets 0, 0, 0, 0",
    "set yrange [0:1.3]", "set ytics 0, 0.2, 1", "set key top left horizontal maxcols 2",
  }
  if best then
    script[#script + 1] = ("set arrow from %s, graph 0 to %s, graph 1 nohead dt 3 lw 1.5 lc rgb '#888888'"):format(
      gp.num(best), gp.num(best))
    script[#script + 1] = ("set title %s"):format(
      str(("Weighted F1 and accuracy (best validation F1 %.3f at epoch %s)"):format(best_f1, gp.num(best))))
  end
  if #score > 0 then
    script[#script + 1] = "plot " .. table.concat(score, ", ")
  else
    script[#script + 1] = "set label 'no F1 or accuracy in the history' at graph 0.5, 0.5 center"
    script[#script + 1] = "plot NaN notitle"
  end
  script[#script + 1] = "unset multiplot"
  return gp.render("curves", table.concat(script, "\n"), out, w, h)
end

-- confusion(cm, classes, {title, out, normalize}): rows = true class, columns = predicted.
-- Cells show counts (and the row percentage when normalize); colour is the row fraction
-- when normalize, else the count.
function M.confusion(cm, classes, opts)
  cm = gp.totable(cm, "cm", "confusion")
  local n = #classes
  local out, w, h = gp.check_out(opts, "confusion", math.max(700, 120 + 70 * n), math.max(620, 90 + 64 * n))
  check_list(classes, "classes", "confusion")
  if #cm ~= n then
    error(("plot.confusion: cm has %d rows but there are %d classes"):format(#cm, n), 2)
  end
  local rows, maxv = {}, 0
  for i = 1, n do
    if type(cm[i]) ~= "table" or #cm[i] ~= n then
      error(("plot.confusion: cm row %d has %s entries, expected %d"):format(i, type(cm[i]) == "table" and #cm[i] or "no", n), 2)
    end
    local total = 0
    for j = 1, n do
      local v = cm[i][j]
      if type(v) ~= "number" or v < 0 or v ~= v then
        error(("plot.confusion: cm[%d][%d] = %s must be a count >= 0"):format(i, j, tostring(v)), 2)
      end
      total = total + v
      maxv = math.max(maxv, v)
    end
    for j = 1, n do
      local v = cm[i][j]
      local frac = total > 0 and v / total or 0
      local text = opts.normalize and ("%d\n%.0f%%"):format(v, 100 * frac) or ("%d"):format(v)
      local colour = opts.normalize and frac or v
      rows[#rows + 1] = { j - 1, i - 1, colour, text, (opts.normalize and frac or (maxv > 0 and v / math.max(1, maxv) or 0)) }
    end
  end
  -- text colour: white on dark cells; the fraction of the colour range decides
  local range = opts.normalize and 1 or math.max(1, maxv)
  for _, r in ipairs(rows) do r[5] = r[3] / range > 0.55 and 1 or 0 end
  local xt, yt = {}, {}
  for i, c in ipairs(classes) do
    xt[i] = ("%s %d"):format(str(c), i - 1)
    yt[i] = xt[i]
  end
  local script = {
    block("cm", rows),
    ("set title %s font ',15'"):format(str(opts.title or "Confusion matrix")),
    "set xlabel 'predicted' font ',13'", "set ylabel 'true' font ',13'",
    ("set xrange [-0.5:%g]"):format(n - 0.5), ("set yrange [%g:-0.5]"):format(n - 0.5),
    "set xtics (" .. table.concat(xt, ", ") .. ") rotate by 35 right", "set ytics (" .. table.concat(yt, ", ") .. ")",
    "set tics scale 0", "unset key", "set size ratio -1",
    "set palette defined (0 '#f7fbff', 0.25 '#c6dbef', 0.5 '#6baed6', 0.75 '#2171b5', 1 '#08306b')",
    ("set cbrange [0:%g]"):format(range),
    ("set cblabel %s"):format(str(opts.normalize and "fraction of the true class" or "clips")),
    "plot $cm using 1:2:3 with image, "
      .. "$cm using 1:2:(stringcolumn(4)):($5 > 0 ? 0xffffff : 0x222222) with labels tc rgb variable font ',11'",
  }
  return gp.render("confusion", table.concat(script, "\n"), out, w, h)
end

-- comparison(rows, {out, title}): grouped bars of accuracy and weighted F1 per model, with
-- value labels; rows = list of {model =, accuracy =, weighted_f1 =, [split =],
-- [accuracy_sd =, weighted_f1_sd =]} (scores in 0..1; *_sd draws error bars).
function M.comparison(rows, opts)
  check_list(rows, "rows", "comparison")
  -- wider with more groups, so that the labels under the bars stay apart
  local out, w, h = gp.check_out(opts, "comparison", math.max(1000, 150 * #rows), 560)
  local data, any_sd = {}, false
  for i, r in ipairs(rows) do
    if type(r) ~= "table" then error(("plot.comparison: rows[%d] must be a table"):format(i), 2) end
    local name = r.model or r.name
    if type(name) ~= "string" then error(("plot.comparison: rows[%d].model must be a string"):format(i), 2) end
    for _, k in ipairs({ "accuracy", "weighted_f1" }) do
      local v = r[k]
      if type(v) ~= "number" or v < 0 or v > 1 then
        error(("plot.comparison: rows[%d].%s = %s must be a score in 0..1"):format(i, k, tostring(v)), 2)
      end
    end
    if r.accuracy_sd or r.weighted_f1_sd then any_sd = true end
    local label = r.split and ("%s (%s)"):format(name, r.split) or name
    data[i] = { i - 1, r.accuracy, r.weighted_f1, r.accuracy_sd or 0, r.weighted_f1_sd or 0, label }
  end
  local bw = 0.36
  local plots = {
    ("$d using ($1-%g):2:(%g) with boxes fs solid 0.9 noborder lc rgb '%s' title 'accuracy'"):format(bw / 2, bw, gp.palette[1]),
    ("$d using ($1+%g):3:(%g) with boxes fs solid 0.9 noborder lc rgb '%s' title 'weighted F1'"):format(bw / 2, bw, gp.palette[2]),
  }
  if any_sd then
    -- vectors with flat heads: gnuplot's yerrorbars leave a gap around the (hidden) point
    local bar = "with vectors heads size screen 0.008,90 lw 1.5 lc rgb '#333333' notitle"
    plots[#plots + 1] = ("$d using ($1-%g):($4 > 0 ? $2-$4 : NaN):(0):(2*$4) %s"):format(bw / 2, bar)
    plots[#plots + 1] = ("$d using ($1+%g):($5 > 0 ? $3-$5 : NaN):(0):(2*$5) %s"):format(bw / 2, bar)
  end
  plots[#plots + 1] = ("$d using ($1-%g):($2+$4):(sprintf('%%.3f', $2)) with labels offset 0,0.8 font ',11' notitle"):format(bw / 2)
  plots[#plots + 1] = ("$d using ($1+%g):($3+$5):(sprintf('%%.3f', $3)) with labels offset 0,0.8 font ',11' notitle"):format(bw / 2)
  local xt = {}
  for i, d in ipairs(data) do xt[i] = ("%s %d"):format(str(d[6]), i - 1) end
  for _, d in ipairs(data) do d[6] = nil end
  local script = {
    block("d", data), common,
    ("set title %s font ',15'"):format(str(opts.title or "Model comparison")),
    "set ylabel 'score'", "set yrange [0:1.08]", "set ytics 0.1",
    ("set xrange [-0.6:%g]"):format(#rows - 0.4), "set xtics (" .. table.concat(xt, ", ") .. ") scale 0 font ',12'",
    "set grid noxtics ytics", "set key top right horizontal", "set boxwidth " .. bw,
    "plot " .. table.concat(plots, ", "),
  }
  return gp.render("comparison", table.concat(script, "\n"), out, w, h)
end

-- scatter(points, labels, classes, {title, out}): 2-D embedding coloured by class, with a legend.
-- points: [N, 2] tensor or list of {x, y}; labels: 1-based class per point (list or tensor).
function M.scatter(points, labels, classes, opts)
  local out, w, h = gp.check_out(opts, "scatter", 1000, 820)
  points = gp.totable(points, "points", "scatter")
  labels = gp.totable(labels, "labels", "scatter")
  check_list(points, "points", "scatter")
  check_list(classes, "classes", "scatter")
  if #labels ~= #points then
    error(("plot.scatter: %d points but %d labels"):format(#points, #labels), 2)
  end
  local by_class = {}
  for i, p in ipairs(points) do
    if type(p) ~= "table" or type(p[1]) ~= "number" or type(p[2]) ~= "number" then
      error(("plot.scatter: point %d must be {x, y} numbers (an [N, 2] tensor)"):format(i), 2)
    end
    local c = labels[i]
    if type(c) ~= "number" or c < 1 or c > #classes or c ~= math.floor(c) then
      error(("plot.scatter: label %d is %s, expected a class index in 1..%d"):format(i, tostring(c), #classes), 2)
    end
    by_class[c] = by_class[c] or {}
    table.insert(by_class[c], { p[1], p[2] })
  end
  local script, plots = { common, "set grid lc rgb '#eeeeee'" }, {}
  for c, name in ipairs(classes) do
    if by_class[c] then
      script[#script + 1] = block("c" .. c, by_class[c])
      plots[#plots + 1] = ("$c%d using 1:2 with points pt 7 ps 0.8 lc rgb '%s' title %s"):format(c,
        gp.palette[(c - 1) % #gp.palette + 1], str(("%s (%d)"):format(name, #by_class[c])))
    end
  end
  script[#script + 1] = ("set title %s font ',15'"):format(str(opts.title or "Embedding"))
  script[#script + 1] = "set key outside right top spacing 1.3 font ',12'"
  script[#script + 1] = ("set xlabel %s"):format(str(opts.xlabel or "UMAP 1"))
  script[#script + 1] = ("set ylabel %s"):format(str(opts.ylabel or "UMAP 2"))
  script[#script + 1] = "plot " .. table.concat(plots, ", ")
  return gp.render("scatter", table.concat(script, "\n"), out, w, h)
end

local function flat_numbers(v, what, fname)
  v = gp.totable(v, what, fname)
  local flat = {}
  local function walk(t)
    for _, x in ipairs(t) do
      if type(x) == "table" then walk(x) else flat[#flat + 1] = x end
    end
  end
  walk(v)
  return flat
end

-- The innermost 2-D matrix of a [.., F, T] table (batch and channel dims of size 1 dropped).
local function matrix2d(v, what, fname)
  v = gp.totable(v, what, fname)
  while type(v[1]) == "table" and type(v[1][1]) == "table" do
    if #v ~= 1 then error(("plot.%s: %s must be [F, T] (or [1, 1, F, T]), got a batch of %d"):format(fname, what, #v), 3) end
    v = v[1]
  end
  if type(v[1]) ~= "table" then error(("plot.%s: %s must be a 2-D [F, T] matrix"):format(fname, what), 3) end
  return v
end

-- waveform_mel(wav, mel, {sr, hop, out, title}): waveform above its log-mel spectrogram.
function M.waveform_mel(wav, mel, opts)
  local out, w, h = gp.check_out(opts, "waveform_mel", 1200, 760)
  local x = flat_numbers(wav, "wav", "waveform_mel")
  local m = matrix2d(mel, "mel", "waveform_mel")
  if #x == 0 then error("plot.waveform_mel: wav is empty", 2) end
  local sr, hop = opts.sr or 16000, opts.hop or 256
  -- min/max envelope per pixel column: the same picture as all samples, far less data
  local cols = math.min(#x, 2 * w)
  local env, per = {}, #x / cols
  for c = 0, cols - 1 do
    local a, b = math.floor(c * per) + 1, math.min(#x, math.floor((c + 1) * per))
    local lo, hi = math.huge, -math.huge
    for i = a, math.max(a, b) do
      local v = x[i]
      if v < lo then lo = v end
      if v > hi then hi = v end
    end
    env[#env + 1] = { (a - 1) / sr, lo, hi }
  end
  local img, frames = {}, #m[1]
  for f = 1, #m do
    for t = 1, frames do img[#img + 1] = { (t - 1) * hop / sr, f - 1, m[f][t] } end
  end
  local dur = #x / sr
  local script = {
    block("w", env), block("m", img), common,
    ("set multiplot layout 2,1 title %s font ',15' margins 0.08,0.88,0.09,0.9 spacing 0,0.1"):format(
      str(opts.title or "Waveform and log-mel spectrogram")),
    ("set xrange [0:%g]"):format(dur), "unset key", "set ylabel 'amplitude'", "unset xlabel",
    "set title 'Waveform'",
    ("plot $w using 1:2:3 with filledcurves lc rgb '%s'"):format(gp.palette[1]),
    "set title 'Log-mel spectrogram'", "set ylabel 'mel bin'", "set xlabel 'time (s)'", ("set yrange [0:%d]"):format(#m - 1),
    "set palette defined (0 '#000004', 0.25 '#51127c', 0.5 '#b73779', 0.75 '#fc8961', 1 '#fcfdbf')",
    ("set cblabel %s"):format(str(opts.cblabel or "dB")), "set grid front lc rgb '#666666'",
    "plot $m using 1:2:3 with image",
    "unset multiplot",
  }
  return gp.render("waveform_mel", table.concat(script, "\n"), out, w, h)
end

-- lr(values, {out, title, xlabel}): the learning rate per step (or per epoch).
function M.lr(values, opts)
  local out, w, h = gp.check_out(opts, "lr", 900, 480)
  values = flat_numbers(values, "values", "lr")
  check_list(values, "values", "lr")
  local rows = {}
  for i, v in ipairs(values) do
    if type(v) ~= "number" then error(("plot.lr: values[%d] must be a number, got %s"):format(i, type(v)), 2) end
    rows[i] = { i, v }
  end
  local script = {
    block("lr", rows), common,
    ("set title %s font ',15'"):format(str(opts.title or "Learning-rate schedule")),
    ("set xlabel %s"):format(str(opts.xlabel or "step")), "set ylabel 'learning rate'", "unset key",
    "set format y '%.1e'", ("set xrange [1:%d]"):format(math.max(2, #values)),
    ("plot $lr using 1:2 with lines lw 2.5 lc rgb '%s'"):format(gp.palette[1]),
  }
  return gp.render("lr", table.concat(script, "\n"), out, w, h)
end

M.available = gp.available

return M
