-- ser.cli: negative numbers after an option that takes a value are read as that value
-- (lua-argparse alone takes `-1` in `--lr -1` for an unknown option).
require "ser"
local cli = require "ser.cli"
local argparse = require "argparse"

local function parser()
  local p = argparse("prog", "test parser")
  p:argument("file", "a positional"):args("?")
  p:option("--lr", "a number"):convert(tonumber)
  p:option("-l --floor", "a number with a short alias"):convert(tonumber)
  p:option("--name", "a string")
  p:flag("--amp", "a flag")
  return p
end

-- pparse: errors come back as values instead of exiting the process
local function parse(argv)
  local p = parser()
  return p:pparse(cli.join_negative_values(p, argv))
end

describe("ser.cli", function()
  it("plain argparse reads `--lr -1` as an unknown option (the reason for ser.cli)", function()
    local ok, err = parser():pparse{ "--lr", "-1" }
    assert.is_false(ok)
    assert.are.equal("unknown option '-1'", err:match("^[^\n]*"))
  end)

  it("reads a negative number after an option as its value, in every spelling", function()
    for _, case in ipairs{ { "-1", -1 }, { "-1e-3", -1e-3 }, { "-.5", -0.5 }, { "-0", 0 }, { "-0x10", -16 } } do
      local ok, args = parse{ "--lr", case[1] }
      assert.is_true(ok, tostring(args))
      assert.are.equal(case[2], args.lr, case[1])
    end
    local ok, args = parse{ "-l", "-80", "f.wav", "--lr", "-2" }
    assert.is_true(ok, tostring(args))
    assert.are.same({ -80, -2, "f.wav" }, { args.floor, args.lr, args.file })
    ok, args = parse{ "--floor", "-60", "--name", "-3" }
    assert.is_true(ok, tostring(args))
    assert.are.same({ -60, "-3" }, { args.floor, args.name })
  end)

  it("leaves everything else to argparse", function()
    -- already joined, positive, not a number, after `--`, after a flag
    local p = parser()
    assert.are.same({ "--lr=-1", "--lr", "2", "--name", "-x", "--", "--lr", "-1" },
      cli.join_negative_values(p, { "--lr=-1", "--lr", "2", "--name", "-x", "--", "--lr", "-1" }))
    assert.are.same({ "--amp", "-1" }, cli.join_negative_values(p, { "--amp", "-1" }))
    local ok, err = parse{ "--amp", "-1" }
    assert.is_false(ok)
    assert.are.equal("unknown option '-1'", err:match("^[^\n]*"))
    ok, err = parse{ "--name", "-x" }
    assert.is_false(ok)
    assert.are.equal("unknown option '-x'", err:match("^[^\n]*"))
    -- the caller's list is not modified
    local argv = { "--lr", "-1" }
    cli.join_negative_values(p, argv)
    assert.are.same({ "--lr", "-1" }, argv)
  end)

  it("without argparse's option list nothing is joined", function()
    assert.are.same({ "--lr", "-1" }, cli.join_negative_values({}, { "--lr", "-1" }))
  end)

  it("parse() returns the parsed table", function()
    local args = cli.parse(parser(), { "--lr", "-4" })
    assert.are.equal(-4, args.lr)
  end)
end)
