-- ser.options.check: the one unknown-option check of the Lua library.
require "ser"
local options = require "ser.options"

describe("ser.options.check", function()
  it("names the first unknown key and the known ones (a list in its order, a set sorted)", function()
    assert.has_error(function() options.check({ bogus = 1, sr = 2 }, { "sr", "mono" }, "audio.x") end,
      "audio.x: unknown option 'bogus' (expected sr, mono)")
    assert.has_error(function() options.check({ zz = 1, aa = 2 }, { mono = true, sr = true }, "f") end,
      "f: unknown option 'aa' (expected mono, sr)")
    assert.has_error(function() options.check({ top = 1 }, { "top_db" }, "loader: trim", 1, "field") end,
      "loader: trim: unknown field 'top' (expected top_db)")
    assert.has_error(function() options.check(3, { "a" }, "f") end, "f: options must be a table, got number")
  end)

  it("passes known keys and nil through", function()
    local t = { sr = 1 }
    assert.are.equal(t, options.check(t, { "sr" }, "f"))
    assert.are.same({}, options.check(nil, { "sr" }, "f"))
  end)

  it("blames the caller's caller at level 2, like the checks it replaced", function()
    local function api(o) options.check(o, { "a" }, "api", 2) end
    local ok, err = pcall(function() api({ b = 1 }) end)   -- this line is the one named
    assert.is_false(ok)
    assert.matches("options_spec.lua:%d+: api: unknown option 'b'", err)
  end)
end)
