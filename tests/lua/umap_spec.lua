-- ser.umap from Lua: shapes, the info table, determinism (seed and
-- ser.manual_seed), quality on generated clusters, and option errors.
local ser = require "ser"
local T = ser.tensor

-- n points around `k` centres in d dimensions, deterministic (no global RNG).
local function clusters(n, d, k)
  local rows, labels, s = {}, {}, 12345
  local function rnd() s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5 end
  for i = 1, n do
    local c = (i - 1) % k
    local r = {}
    for j = 1, d do r[j] = (j % k == c and 8 or 0) + rnd() end
    rows[i], labels[i] = r, c + 1
  end
  return rows, labels
end

describe("ser.umap", function()
  local X = T.new((clusters(240, 12, 4)))

  it("embeds [n, d] into [n, 2] and reports what it did", function()
    local Y, info = ser.umap(X, { seed = 7, n_epochs = 100 })
    assert.same({ 240, 2 }, Y:shape())
    assert.equal(15, info.n_neighbors)
    assert.equal(100, info.n_epochs)
    assert.equal(7, info.seed)
    assert.truthy(math.abs(info.a - 1.5769) < 1e-3 and math.abs(info.b - 0.8951) < 1e-3)
    assert.truthy(info.n_edges > 240)
    assert.equal(0, info.random_init_points)
    for _, k in ipairs { "knn", "graph", "init", "sgd" } do assert.is_number(info.seconds[k]) end
    local _, info3 = ser.umap(X, { seed = 7, n_epochs = 10, n_components = 3, init = "random" })
    assert.equal(240, info3.random_init_points)
  end)

  it("keeps neighbourhoods: high trustworthiness, clusters stay apart", function()
    local Y = ser.umap(X, { seed = 1 })
    assert.truthy(ser.metrics.trustworthiness(X, Y, 10) > 0.9)
  end)

  it("is deterministic for a seed, and follows ser.manual_seed without one", function()
    local a = ser.umap(X, { seed = 3, n_epochs = 50 }):totable()
    local b = ser.umap(X, { seed = 3, n_epochs = 50 }):totable()
    assert.same(a, b)
    assert.are_not.same(a, ser.umap(X, { seed = 4, n_epochs = 50 }):totable())
    ser.manual_seed(11)
    local c, ic = ser.umap(X, { n_epochs = 50 })
    ser.manual_seed(11)
    local d = ser.umap(X, { n_epochs = 50 })
    assert.same(c:totable(), d:totable())
    assert.same(c:totable(), ser.umap(X, { n_epochs = 50, seed = ic.seed }):totable())
  end)

  it("accepts a table of rows and small inputs", function()
    local Y, info = ser.umap({ { 0, 0 }, { 1, 0 }, { 0, 1 }, { 5, 5 }, { 6, 5 } }, { seed = 1 })
    assert.same({ 5, 2 }, Y:shape())
    assert.equal(4, info.n_neighbors) -- reduced to n - 1, as umap-learn
  end)

  it("rejects bad options and data with a clear message", function()
    assert.error_matches(function() ser.umap(X, { n_neighbour = 5 }) end,
      "umap: unknown option 'n_neighbour' (expected n_neighbors,", nil, true)
    assert.error_matches(function() ser.umap(X, { init = "pca" }) end,
      "umap: option 'init' is 'pca'; expected 'spectral' or 'random'", nil, true)
    assert.error_matches(function() ser.umap(X, { n_neighbors = 1 }) end,
      "umap: n_neighbors must be >= 2, got 1", nil, true)
    assert.error_matches(function() ser.umap(X, { min_dist = 3 }) end,
      "umap: min_dist must be in [0, spread = 1], got 3", nil, true)
    assert.error_matches(function() ser.umap(X, { seed = -5 }) end,
      "umap: option 'seed' must be >= 0, got -5", nil, true)
    assert.error_matches(function() ser.umap(T.zeros(10)) end,
      "umap: X must be 2-D [n, features], got shape [10]", nil, true)
    assert.error_matches(function() ser.umap("data") end,
      "umap: X must be a 2-D tensor or a table of rows, got string", nil, true)
    assert.error_matches(function() ser.umap({ { 1, 0 / 0 }, { 2, 3 } }) end,
      "umap: the data has a non-finite value", nil, true)
  end)
end)
