-- ser.stream.segments: from per-frame voice activity and per-window probabilities to emotion
-- segments, incrementally (no model here; ser.stream feeds it).
--
--   local seg = segments.new{ classes = {...}, frame = 0.01, hop = 0.5, smooth = 3,
--                             min_silence = 0.5, min_segment = 1.0, min_speech = 0.25 }
--   seg:frames(first, flags)          -- voice activity of frames first, first+1, ... (0-based)
--   local p, closed = seg:window(centre, probs, weight)   -- a window centred at `centre` s
--   local closed = seg:finish()
--
-- Boundaries come from the voice activity, at frame resolution: a region is a run of voiced
-- frames that no silence of min_silence seconds or more interrupts; it spans from its first
-- voiced frame to the end of its last. Labels come from the windows: each window stands for
-- the hop-long cell around its centre, and a cell belongs to the region it lies in (within
-- hop / 2 of its edges; cells in silence belong to none). A cell's probabilities are the
-- weighted mean of the last `smooth` windows of the same region (weight: the window's voiced
-- frames, so that a window that holds little speech counts little). Inside a region, the label
-- may change: a change is taken once the new label has held for min_segment seconds (a
-- shorter run is merged into the segment it interrupts; a first run shorter than that takes
-- the label of what follows). A segment's label is the argmax of its cells' mean
-- probabilities, its confidence that mean. A region shorter than min_speech (a click, a
-- breath) or in which no window was scored gives no segment.
local M = {}

local Seg = {}
Seg.__index = Seg

function M.new(o)
  return setmetatable({ classes = o.classes, k = #o.classes, frame = o.frame, hop = o.hop, smooth = o.smooth,
    silence_frames = math.max(1, math.floor(o.min_silence / o.frame + 0.5)),
    min_cells = math.max(1, math.ceil(o.min_segment / o.hop - 1e-9)),
    min_frames = math.floor((o.min_speech or 0) / o.frame + 0.5),
    frontier = 0,         -- next frame not yet seen
    open = nil,           -- the region being spoken: { first =, last = } (frame indices)
    regions = {},         -- regions (closed ones, then the open one) that may still get cells
    history = {}, history_region = false }, Seg)
end

local function argmax(p)
  local best, bi = -math.huge, 1
  for c, v in ipairs(p) do if v > best then best, bi = v, c end end
  return bi, best
end

-- flags[i]: frame first + i - 1 is voiced. Frames before the frontier were seen already.
function Seg:frames(first, flags)
  for i = 1, #flags do
    local f = first + i - 1
    if f >= self.frontier then
      self.frontier = f + 1
      local r = self.open
      if flags[i] then
        if not r then
          r = { first = f, last = f, cells = {}, closed = false }
          self.open = r
          self.regions[#self.regions + 1] = r
        end
        r.last = f
      elseif r and f - r.last >= self.silence_frames then
        r.closed, self.open = true, nil
      end
    end
  end
end

local function mean_probs(cells, k)
  local sum, n = {}, 0
  for c = 1, k do sum[c] = 0 end
  for _, cell in ipairs(cells) do
    for c = 1, k do sum[c] = sum[c] + cell.p[c] end
    n = n + 1
  end
  for c = 1, k do sum[c] = sum[c] / n end
  return sum
end

-- A segment of region r from start to stop (seconds) over cells.
function Seg:segment(start, stop, cells)
  local p = mean_probs(cells, self.k)
  local best, conf = argmax(p)
  return { start = start, stop = stop, label = self.classes[best], confidence = conf, probs = p }
end

-- The label runs of a region: cur (the segment being built) and pending (a different label
-- that has not held min_segment yet). Returns a closed segment when a change is taken.
function Seg:add_cell(r, cell)
  r.cells[#r.cells + 1] = cell
  local cur = r.cur
  if not cur then
    r.cur = { start = r.first * self.frame, label = cell.label, cells = { cell } }
    return nil
  end
  local pend = r.pending
  if cell.label == cur.label then
    if pend then
      for _, c in ipairs(pend.cells) do cur.cells[#cur.cells + 1] = c end
      r.pending = nil
    end
    cur.cells[#cur.cells + 1] = cell
    return nil
  end
  if pend and pend.label == cell.label then
    pend.cells[#pend.cells + 1] = cell
  else
    if pend then for _, c in ipairs(pend.cells) do cur.cells[#cur.cells + 1] = c end end
    pend = { label = cell.label, cells = { cell } }
    r.pending = pend
  end
  if #pend.cells < self.min_cells then return nil end
  r.pending = nil
  if #cur.cells < self.min_cells then   -- an unsteady start: it takes the label that follows
    for _, c in ipairs(pend.cells) do cur.cells[#cur.cells + 1] = c end
    cur.label = pend.label
    return nil
  end
  local boundary = pend.cells[1].centre - self.hop / 2
  local done = self:segment(cur.start, boundary, cur.cells)
  r.cur = { start = boundary, label = pend.label, cells = pend.cells }
  return done
end

-- The last segment of a closed region (nil when no cell was scored in it).
function Seg:close_region(r)
  local cur = r.cur
  if not cur or r.last + 1 - r.first < self.min_frames then return nil end
  if r.pending then for _, c in ipairs(r.pending.cells) do cur.cells[#cur.cells + 1] = c end end
  r.cur, r.pending = nil, nil
  return self:segment(cur.start, (r.last + 1) * self.frame, cur.cells)
end

-- Regions that no later cell can reach are done: their last segments go out.
function Seg:retire(before, out)
  local keep = {}
  for _, r in ipairs(self.regions) do
    if r.closed and (r.last + 1) * self.frame + self.hop / 2 < before then
      local s = self:close_region(r)
      if s then out[#out + 1] = s end
    else
      keep[#keep + 1] = r
    end
  end
  self.regions = keep
end

function Seg:region_at(t)
  local half = self.hop / 2
  for _, r in ipairs(self.regions) do
    if t >= r.first * self.frame - half and t <= (r.last + 1) * self.frame + half then return r end
  end
  return nil
end

-- A window centred at `centre` seconds with probabilities probs (nil: not scored, e.g. no
-- speech in it) and weight. Returns its smoothed probabilities (nil when not scored) and the
-- segments this closes.
function Seg:window(centre, probs, weight)
  local out = {}
  self:retire(centre, out)
  local r = probs and self:region_at(centre) or nil
  if not probs or r ~= self.history_region then self.history, self.history_region = {}, r or false end
  if not probs then return nil, out end
  local h = self.history
  h[#h + 1] = { p = probs, w = math.max(weight or 1, 1e-6) }
  if #h > self.smooth then table.remove(h, 1) end
  local p, wsum = {}, 0
  for c = 1, self.k do p[c] = 0 end
  for _, e in ipairs(h) do
    wsum = wsum + e.w
    for c = 1, self.k do p[c] = p[c] + e.w * e.p[c] end
  end
  for c = 1, self.k do p[c] = p[c] / wsum end
  if r then
    local done = self:add_cell(r, { centre = centre, p = p, label = argmax(p) })
    if done then out[#out + 1] = done end
  end
  return p, out
end

-- End of input: every region closes at its last voiced frame.
function Seg:finish()
  if self.open then self.open.closed, self.open = true, nil end
  local out = {}
  self:retire(math.huge, out)
  return out
end

M.argmax = argmax
return M
