-- busted output handler: plainTerminal's output, plus the wall time of every spec file written
-- to the file named by SER_TEST_TIMES (one "seconds<TAB>spec" line each, in run order), so
-- scripts/run-tests.sh can show where the suite's time goes (CI's budget is 20 minutes).
-- Usage: busted --output=tests/lua/helpers/timed_output.lua ...
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.plainTerminal"(options)
  local path = os.getenv("SER_TEST_TIMES")
  if not path or path == "" then return handler end
  local out = assert(io.open(path, "w"))
  busted.subscribe({ "file", "end" }, function(file)
    -- duration is set by busted when the file's end event is published
    out:write(string.format("%.1f\t%s\n", file.duration or -1, file.name))
    out:flush()
    return nil, true
  end)
  busted.subscribe({ "suite", "end" }, function()
    out:close()
    return nil, true
  end)
  return handler
end
