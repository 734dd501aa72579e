-- Bad input catalogue, configuration of experiments/compare.lua (issue 6): unknown flags, zero
-- epochs/batch, a negative learning rate, an output folder that cannot be written. Each must
-- stop with exit status 1 and a message before any corpus is read or any model trained (every
-- case here finishes in well under a second; a training run would take much longer and would
-- print epoch lines).
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "robustness_helpers.lua")

local serlua = H.serlua()
local have = H.exists(serlua) and H.exists("experiments/compare.lua")

-- Runs compare.lua with args; returns exit status, combined output and seconds taken.
local function run(args)
  local out = H.tmpdir("config") .. "/output.txt"
  local t0 = os.time()
  local ok, how, code = os.execute(("timeout 60 %s experiments/compare.lua %s >%s 2>&1"):format(serlua, args, out))
  local text = H.read(out) or ""
  return (ok and 0 or (how == "exit" and code or 128)), text, os.time() - t0
end

-- Unless args name --out, a fresh output folder is passed: it must not exist afterwards, which
-- shows the arguments were refused before anything was prepared, loaded or trained.
local fresh = 0
local function refused(args, message, out_root)
  local out
  if out_root then
    fresh = fresh + 1
    out = ("%s/out%d"):format(out_root, fresh)
    args = args .. " --out " .. out
  end
  local rc, text, secs = run(args)
  assert.are.equal(1, rc, "exit status for " .. args .. ":\n" .. text)
  assert.is_truthy(text:find(message, 1, true), ("expected %q in the output of %s:\n%s"):format(message, args, text))
  if out then assert.is_false(H.exists(out), args .. " created its output folder before refusing") end
  assert.is_true(secs <= 5, args .. " took " .. secs .. " s")
end

local describe_if = have and describe or pending

describe_if("robustness: compare.lua configuration", function()
  local dir
  setup(function() dir = H.tmpdir("config") end)
  teardown(H.cleanup)

  it("unknown flags", function()
    refused("--bogus", "Error: unknown option '--bogus'", dir)
    refused("--epoch 3", "Error: unknown option '--epoch'", dir)
  end)

  it("--epochs 0, --batch 0 and fractional counts", function()
    refused("--epochs 0", ": epochs must be a whole number >= 1, got 0 (from --epochs 0)", dir)
    refused("--batch 0", ": batch must be a whole number >= 1, got 0 (from --batch 0)", dir)
    refused("--epochs 2.5", ": epochs must be a whole number >= 1, got 2.5 (from --epochs 2.5)", dir)
    refused("--batch abc", ": batch must be a whole number >= 1, got \"abc\" (from --batch abc)", dir)
  end)

  it("negative or zero learning rate", function()
    refused("--lr=-1", ": optim.lr must be a number > 0, got -1 (from --lr -1)", dir)
    -- a space instead of `=`: read as the value (ser.cli), not as an unknown option '-1'
    refused("--lr -1", ": optim.lr must be a number > 0, got -1 (from --lr -1)", dir)
    refused("--lr -1e-3", ": optim.lr must be a number > 0, got -0.001 (from --lr -1e-3)", dir)
    refused("--lr 0", ": optim.lr must be a number > 0, got 0 (from --lr 0)", dir)
  end)

  it("other values checked up front", function()
    refused("--seconds 0", ": data.seconds must be a number > 0, got 0 (from --seconds 0)", dir)
    refused("--models cnn2d,foo", "Error: --models: unknown model 'foo' (expected cnn2d, crnn, cnn1d, whisper)", dir)
    refused("--folds 1", "Error: --folds must be a whole number >= 2", dir)
    refused("--data " .. dir .. "/nothing --quick", "Error: --data " .. dir .. "/nothing is not a folder")
  end)

  it("an output folder that cannot be written: error before training, nothing written", function()
    -- /proc refuses new folders even to root (tests run as root in CI, where chmod would not help)
    refused("--out /proc/ser-robust --quick", "output folder /proc/ser-robust/plots cannot be created "
      .. "(check --out /proc/ser-robust)")
    local file = H.write(dir .. "/a-file", "x")
    refused("--out " .. file .. " --quick", ("output folder %s/plots cannot be created (check --out %s)"):format(file, file))
    if not H.is_root() then
      H.sh("mkdir -p " .. dir .. "/ro && chmod 555 " .. dir .. "/ro")
      refused("--out " .. dir .. "/ro --quick", "cannot be created")
    end
  end)
end)
