-- Speaker normalisation of spectral features (loader{normalize = "speaker" | "speaker_bins"}):
-- the mean and 1/std of a speaker's features over all frames of all of the speaker's clips
-- in a part (un-augmented; no labels used) -- one pair for all bins ("speaker", the per-clip
-- z-norm lifted to the speaker) or one per bin ("speaker_bins") -- so that every speaker is
-- centred and scaled alike while the differences between one speaker's clips (louder,
-- brighter) stay. The loader's C worker applies the same statistics before its masks.
local T = require "ser.tensor"

local M = {}

-- A spread below this is taken as the floor, so that a flat bin is not blown up; the C core's,
-- which its inference API applies too.
M.STD_FLOOR = require("ser.core.features").SPEAKER_STD_FLOOR

-- Per-bin mean and variance of the features of `rows`, in chunks of 64 clips: sums of
-- (x - K) and (x - K)^2 with K the first chunk's bin means (one pass, no cancellation).
local function bin_moments(features_of, rows)
  local K, s1, s2, count = nil, nil, nil, 0
  for start = 1, #rows, 64 do
    local chunk = {}
    for i = start, math.min(#rows, start + 63) do chunk[#chunk + 1] = rows[i] end
    local f = features_of(chunk)
    local sh = f:shape()
    f = f:contiguous():view(sh[1], sh[3], sh[4])
    if not K then K = f:mean(3):mean(1):view(1, sh[3], 1) end
    local d = f - K
    local a, b = d:sum(3):sum(1), (d * d):sum(3):sum(1)
    s1, s2 = s1 and s1 + a or a, s2 and s2 + b or b
    count = count + sh[1] * sh[4]
  end
  local k, m1, m2 = K:contiguous():view(K:shape()[2]):totable(), s1:totable(), s2:totable()
  local mean, var = {}, {}
  for f = 1, #k do
    local mu = m1[f] / count
    mean[f], var[f] = k[f] + mu, math.max(0, m2[f] / count - mu * mu)
  end
  return mean, var
end

-- stats(features_of, items, mode) -> mean, scale: [N, F] tensors, row i holding item i's
-- speaker's statistics (items[i].speaker); features_of(rows) -> [n, 1, F, frames], the
-- un-normalised features of those items (computed, or gathered when already at hand).
function M.stats(features_of, items, mode)
  local groups, order = {}, {}
  for i, it in ipairs(items) do
    local key = tostring(it.speaker)
    if not groups[key] then groups[key] = {}; order[#order + 1] = key end
    table.insert(groups[key], i)
  end
  local per_speaker = {}
  for _, key in ipairs(order) do
    local mean, var = bin_moments(features_of, groups[key])
    local F = #mean
    if mode == "speaker" then
      -- one mean and std over all bins and frames: every bin has the same number of frames,
      -- so the pooled moments are the averages of the bins' ones
      local m, sq = 0, 0
      for f = 1, F do m, sq = m + mean[f], sq + var[f] + mean[f] * mean[f] end
      m, sq = m / F, sq / F
      for f = 1, F do mean[f], var[f] = m, math.max(0, sq - m * m) end
    end
    local scale = {}
    for f = 1, F do scale[f] = 1 / math.max(math.sqrt(var[f]), M.STD_FLOOR) end
    per_speaker[key] = { mean = mean, scale = scale }
  end
  local mean_rows, scale_rows = {}, {}
  for i, it in ipairs(items) do
    local st = per_speaker[tostring(it.speaker)]
    mean_rows[i], scale_rows[i] = st.mean, st.scale
  end
  return T.new(mean_rows), T.new(scale_rows)
end

-- (x - mean) * scale for features x [B, 1, F, frames] and per-row statistics [B, F].
function M.apply(x, mean, scale)
  local s = x:shape()
  return (x - mean:view(s[1], 1, s[3], 1)) * scale:view(s[1], 1, s[3], 1)
end

return M
