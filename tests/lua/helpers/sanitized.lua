-- `make check-asan` runs the specs again in an AddressSanitizer + UBSan build
-- (SER_TEST_SANITIZED=1; scripts/run-tests.sh). What the sanitizers check is the project's C
-- code: work done by other processes (onnx.checker, onnxruntime under node, Chromium, mpirun)
-- is no better checked there, nor is the same C code run again on full-size encoders, and both
-- cost CI minutes (its budget is 20). Such cases skip there -- visibly, saying that the plain
-- `make test` runs them.
--   local san = dofile(here .. "helpers/sanitized.lua")
--   san.on                       true under make check-asan
--   san.why(what)                the pending message: "<what> runs in the plain `make test`..."
--   local it_plain = san.plain_it(it, pending, "onnxruntime's comparison")
local M = {}

M.on = (os.getenv("SER_TEST_SANITIZED") or "") ~= ""

function M.why(what)
  return ("skipped under make check-asan (CI time): %s runs in the plain `make test`"):format(what)
end

-- `it` in the plain pass; under make check-asan a function that leaves the case pending with
-- M.why(what). it/pending are passed in: they are the spec file's busted functions.
function M.plain_it(it, pending, what)
  if not M.on then return it end
  return function(name) pending(name .. " -- " .. M.why(what)) end
end

return M
