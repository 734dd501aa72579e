-- `make check-asan` runs the specs again in an AddressSanitizer + UBSan build
-- (SER_TEST_SANITIZED=1; scripts/run-tests.sh). What they check there is the project's C code;
-- work done by other processes (python3-torch and onnx references, onnxruntime under node,
-- Chromium, mpirun) or by Lua alone is no better checked by a sanitized serlua, and costs CI
-- minutes (its budget is 20), so such cases skip there -- visibly, saying that the plain
-- `make test` runs them.
--   local san = dofile(here .. "helpers/sanitized.lua")
--   san.on                       true under make check-asan
--   san.why(what)                the pending message: "<what> runs in the plain `make test`..."
--   local it_plain = san.plain_it(it, pending, "onnxruntime's comparison")
local M = {}

M.on = (os.getenv("SER_TEST_SANITIZED") or "") ~= ""

function M.why(what)
  return ("skipped under make check-asan: %s runs in the plain `make test` (the sanitizers check this "
    .. "project's C code, not other processes' or Lua's)"):format(what)
end

-- `it` in the plain pass; under make check-asan a function that leaves the case pending with
-- M.why(what). it/pending are passed in: they are the spec file's busted functions.
function M.plain_it(it, pending, what)
  if not M.on then return it end
  return function(name) pending(name .. " -- " .. M.why(what)) end
end

return M
