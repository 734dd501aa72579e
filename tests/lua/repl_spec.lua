-- serlua: the command line (lua.c's semantics), the REPL driven through a pipe and
-- through a pseudo-terminal (readline: prompts, Tab, history, Ctrl-C, Ctrl-D), and the
-- printing / completion helpers of lua/ser/repl.lua.
local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local build = os.getenv("SER_TEST_BUILD") or (root .. "/build")
local serlua = build .. "/serlua"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpdir
local function tmp(name)
  if not tmpdir then
    local p = io.popen("mktemp -d /tmp/serlua-spec.XXXXXX")
    tmpdir = p:read("l")
    p:close()
  end
  return tmpdir .. "/" .. name
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs serlua with the given argument string (already quoted) and stdin text.
-- Returns stdout, stderr, exit status. env: extra "NAME=value" assignments.
local function run(args, input, env)
  local inp, out, err = tmp("stdin"), tmp("stdout"), tmp("stderr")
  write(inp, input or "")
  local cmd = ("cd %s && env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUA_INIT_5_4 %s %s %s <%s >%s 2>%s")
    :format(q(tmpdir), env or "", q(serlua), args, q(inp), q(out), q(err))
  local _, _, code = os.execute(cmd)
  return read(out), read(err), code
end

-- The REPL reading from a pipe (no prompts, no readline).
local function repl(input, env)
  return run("-i", input, env)
end

local function lines(s)
  local t = {}
  for l in (s or ""):gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

describe("serlua", function()
teardown(function()
  if tmpdir then os.execute("rm -rf " .. q(tmpdir)) end
end)

describe("REPL through a pipe", function()
  it("reads a statement over several lines (the <eof> rule)", function()
    local out, err, code = repl("x = 1 +\n 2\nx\n")
    assert.are.same({ "3" }, lines(out))
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("continues an expression over several lines and echoes it", function()
    local out = repl("1 +\n2\n{\n a = 1,\n}\n")
    assert.are.same({ "3", "{ a = 1 }" }, lines(out))
  end)

  it("executes a statement with side effects exactly once", function()
    local out = repl(table.concat({
      "n = 0",
      "function bump() n = n + 1 return n end",
      "bump()",                -- an expression: compiled as `return bump()`, run once
      "n",
      "t = {}",
      "table.insert(t,",       -- a statement split over two lines
      "  'a')",
      "#t",
      "bump() bump()",         -- not an expression: run as a statement, once
      "n",
    }, "\n") .. "\n")
    assert.are.same({ "1", "1", "1", "3" }, lines(out))
  end)

  it("hides the values of a line ending with ';' but still runs it", function()
    local out = repl("n = 0\nfunction bump() n = n + 1 return n end\nbump();\n1 + 1;\nn\nbump() ;  \nn\n")
    assert.are.same({ "1", "2" }, lines(out))
  end)

  it("echoes =expr and several values tab-separated, nil included", function()
    local out = repl("=2*21\nreturn 1, nil, 'x'\nstring.rep('ab', 2)\n")
    assert.are.same({ "42", "1\tnil\tx", "abab" }, lines(out))
  end)

  it("pretty-prints tables: keys sorted, strings quoted, depth limit, cycles", function()
    local out = repl(table.concat({
      "{ 3, 'b', flag = true, ['two words'] = 2, x = 1.5 }",
      "{ a = { b = { c = 1 } } }",
      "t = { name = 't' } t.self = t",
      "t",
      "{}",
    }, "\n") .. "\n")
    local l = lines(out)
    assert.are.equal('{ 3, "b", flag = true, ["two words"] = 2, x = 1.5 }', l[1])
    assert.are.equal("{ a = { b = {...} } }", l[2])
    assert.matches('^{ name = "t", self = <cycle: table: 0x%x+> }$', l[3])
    assert.are.equal("{}", l[4])
  end)

  it("takes the printing limits from require('ser.repl').options", function()
    local out = repl("R = require 'ser.repl'\nR.options.depth = 1\n{ a = { b = 1 } }\n"
      .. "R.options.width = 10\n{ 1, 2, 3, 4, 5 }\n")
    assert.are.same({ "{ a = {...} }", "{", "  1,", "  2,", "  3,", "  4,", "  5", "}" }, lines(out))
  end)

  it("keeps print as Lua's own", function()
    local out = repl("print({})\nprint(1, 'a', nil)\nprint == _G.print\nprint\n")
    local l = lines(out)
    assert.matches("^table: 0x%x+$", l[1])
    assert.are.equal("1\ta\tnil", l[2])
    assert.are.equal("true", l[3])
    assert.matches("^function: ", l[4])
  end)

  it("reports a runtime error with a traceback and keeps the session", function()
    local out, err, code = repl("x = 5\nerror('boom')\nx + 1\n")
    assert.are.same({ "6" }, lines(out))
    assert.matches("stdin:1: boom", err, 1, true)
    assert.matches("stack traceback:", err, 1, true)
    assert.are.equal(0, code)
  end)

  it("reports a syntax error and keeps the session", function()
    local out, err = repl("x = = 1\n2\n")
    assert.are.same({ "2" }, lines(out))
    assert.matches("unexpected symbol near '='", err, 1, true)
  end)

  it("reports an unfinished statement at end of input", function()
    local out, err = repl("for i = 1, 2 do\n")
    assert.are.equal("", out)
    assert.matches("'end' expected", err, 1, true)
  end)

  it("reports an error raised while showing a value and keeps the session", function()
    local out, err = repl("setmetatable({}, { __tostring = function() error('no show') end })\n7\n")
    assert.are.same({ "7" }, lines(out))
    assert.matches("no show", err, 1, true)
  end)

  it("keeps NUL bytes of a piped line and refuses precompiled bytecode", function()
    local out, err = repl('x = "a\0b"\n#x\n' .. string.dump(function() end) .. "\n7\n")
    assert.are.same({ "3", "7" }, lines(out))
    assert.matches("attempt to load a binary chunk", err, 1, true)
  end)

  it("has ser as a global in the REPL only", function()
    local out = repl("type(ser)\n")
    assert.are.same({ "table" }, lines(out))
    out = run("-e " .. q("print(ser, type(require 'ser'))"))
    assert.are.same({ "nil\ttable" }, lines(out))
  end)

  it("shows a tensor through its __tostring", function()
    local expected = run("-e " .. q("print(tostring(require('ser').tensor.zeros(50, 60)))"))
    local out, err = repl("ser.tensor.zeros(50, 60)\n")
    assert.are.equal("", err)
    assert.are.equal(expected, out)
  end)

  it("runs -i after the script, with the script's globals", function()
    write(tmp("setup.lua"), "answer = 42\n")
    local out = run("-i setup.lua", "answer\n")
    assert.are.same({ "42" }, lines(out))
  end)
end)

describe("command line", function()
  it("exits 1 with the message and a traceback for an uncaught error", function()
    write(tmp("fail.lua"), "local function inner() error('bad input: 3') end\ninner()\n")
    local out, err, code = run("fail.lua")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("fail.lua:1: bad input: 3", err, 1, true)
    assert.matches("stack traceback:", err, 1, true)
    assert.matches("in local 'inner'", err, 1, true)
  end)

  it("reports a non-string error object", function()
    local _, err, code = run("-e " .. q("error({})"))
    assert.are.equal(1, code)
    assert.matches("(error object is a table value)", err, 1, true)
  end)

  it("reports a script that does not exist", function()
    local _, err, code = run("no-such-script.lua")
    assert.are.equal(1, code)
    assert.matches("cannot open no-such-script.lua", err, 1, true)
  end)

  it("builds arg like lua: script at 0, options at negative indices", function()
    write(tmp("args.lua"), "print(#arg, arg[0], arg[1], arg[2], arg[-1], arg[-2], ...)\n")
    local out, _, code = run("-e " .. q("x=1") .. " args.lua one 'two words'")
    assert.are.equal(0, code)
    assert.are.same({ "2\targs.lua\tone\ttwo words\tx=1\t-e\tone\ttwo words" }, lines(out))
    assert.are.equal(serlua, lines(run("-e " .. q("print(arg[-3])") .. " args.lua"))[1])
  end)

  it("runs -e chunks in order and stops at the first failing one", function()
    local out, err, code = run("-e " .. q("print(1)") .. " -e" .. q("print(2)") .. " -e " .. q("error('third')")
      .. " -e " .. q("print(4)"))
    assert.are.same({ "1", "2" }, lines(out))
    assert.matches("(command line):1: third", err, 1, true)
    assert.are.equal(1, code)
  end)

  it("loads modules with -l mod and -l g=mod", function()
    write(tmp("mymod.lua"), "return { name = 'mymod' }\n")
    local env = "LUA_PATH=" .. q(tmpdir .. "/?.lua")
    local out, err, code = run("-l mymod -l alias=mymod -l ser -e " .. q("print(mymod.name, alias.name, type(ser.tensor))"),
      "", env)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.same({ "mymod\tmymod\ttable" }, lines(out))
    local _, err2, code2 = run("-l no_such_module")
    assert.are.equal(1, code2)
    assert.matches("module 'no_such_module' not found", err2, 1, true)
  end)

  it("-v prints serlua, Lua, BLAS and thread count", function()
    local out, _, code = run("-v", "", "SER_NUM_THREADS=1")
    assert.are.equal(0, code)
    assert.matches("^serlua %d+%.%d+%.%d+  %(Lua 5%.4%.%d+%)\n", out)
    assert.matches("\nBLAS: [^\n]*OpenBLAS", out)
    assert.matches("\nthreads: 1 ", out)
  end)

  it("takes the thread count from SER_NUM_THREADS, else OMP_NUM_THREADS; a bad value is named and ignored", function()
    local function threads(env)
      local out, err, code = run("-v", "", "-u SER_NUM_THREADS -u OMP_NUM_THREADS " .. env)
      assert.are.equal(0, code)
      return tonumber(out:match("\nthreads: (%d+) ")), err
    end
    -- OMP_NUM_THREADS alone is obeyed (several processes given one core each),
    -- as a list too, where its first entry is the count.
    assert.are.same({ 1, "" }, { threads("OMP_NUM_THREADS=1") })
    assert.are.same({ 1, "" }, { threads("OMP_NUM_THREADS=1,2") })
    -- SER_NUM_THREADS wins over it.
    assert.are.same({ 3, "" }, { threads("SER_NUM_THREADS=3 OMP_NUM_THREADS=1") })
    -- Not a count: a warning naming the variable, and the next source decides.
    local n, err = threads("SER_NUM_THREADS=two OMP_NUM_THREADS=1")
    assert.are.equal(1, n)
    assert.matches("ignoring SER_NUM_THREADS='two' (expected a positive thread count)", err, 1, true)
    n, err = threads("OMP_NUM_THREADS=0")
    assert.is_true(n >= 1)
    assert.matches("ignoring OMP_NUM_THREADS='0'", err, 1, true)
  end)

  it("--help prints usage on stdout; a bad option fails with usage on stderr", function()
    local out, err, code = run("--help")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.matches("^usage: [^\n]+ %[options%] %[script %[args%]%]", out)
    for _, opt in ipairs({ "-e stat", "-i", "-l mod", "-l g=mod", "-v", "--help", "--", "-  " }) do
      assert.matches("\n  " .. opt:gsub("%p", "%%%0"), out)
    end
    out, err, code = run("-x")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("unrecognized option '-x'\nusage:", err, 1, true)
    _, err, code = run("-e")
    assert.are.equal(1, code)
    assert.matches("'-e' needs argument", err, 1, true)
  end)

  it("runs stdin as a script with '-' and when stdin is not a terminal", function()
    local out, _, code = run("- a b", "print(...)\n")
    assert.are.equal(0, code)
    assert.are.same({ "a\tb" }, lines(out))
    out = run("", "print(6 * 7)\n")
    assert.are.same({ "42" }, lines(out))
    local _, err
    _, err, code = run("", "error('from stdin')\n")
    assert.are.equal(1, code)
    assert.matches("stdin:1: from stdin", err, 1, true)
  end)

  it("stops handling options at --", function()
    write(tmp("-e"), "print('a script named -e', arg[-1])\n")
    local out = run("-- -e")
    assert.are.same({ "a script named -e\t--" }, lines(out))
  end)

  it("honours LUA_INIT unless -E", function()
    local out = run("-e " .. q("print(init_ran)"), "", "LUA_INIT=" .. q("init_ran = 'yes'"))
    assert.are.same({ "yes" }, lines(out))
    out = run("-E -e " .. q("print(init_ran)"), "", "LUA_INIT=" .. q("init_ran = 'yes'"))
    assert.are.same({ "nil" }, lines(out))
  end)
end)

-- A pseudo-terminal session: steps as in tests/c/pty/ptydrive.c. Returns the
-- transcript (carriage returns removed) and the exit line. Keys typed while a chunk
-- runs reach readline only in part (the terminal is in line mode then; a Ctrl-D is
-- lost), so the sessions wait for the prompt before typing, as a person would.
local ptydrive
local function pty(steps, hist)
  if not ptydrive then
    ptydrive = build .. "/tests/ptydrive"
    local src = root .. "/tests/c/pty/ptydrive.c"
    assert(os.execute(("mkdir -p %s && cc -std=c11 -O1 -o %s %s -lutil"):format(q(build .. "/tests"),
      q(ptydrive), q(src))), "cannot build the pty driver")
  end
  local script = tmp("pty-steps")
  write(script, table.concat(steps, "\n") .. "\n")
  local cmd = ("cd %s && env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUA_INIT_5_4 HOME=%s TERM=dumb INPUTRC=/dev/null "
    .. "SERLUA_HISTORY=%s %s %s -- %s"):format(q(tmpdir), q(tmpdir), q(hist or tmp("history")), q(ptydrive), q(script),
    q(serlua))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  out = out:gsub("\r", "")
  return out, out:match("\n(%[[^\n]*%])\n?$")
end

describe("REPL on a terminal", function()
  before_each(function() tmp("x") os.remove(tmp("history")) end)

  it("greets, prompts, continues with '>> ', and exits 0 on Ctrl-D", function()
    local out, status = pty({
      "expect > ", "send x = 1 +\\r", "expect >> ", "send  2\\r", "expect > ", "send x * 2\\r", "expect 6",
      "expect > ", "send \\004",
    })
    assert.matches("`ser` is loaded as a global", out, 1, true)
    assert.matches("> x = 1 +\n>>  2\n> x * 2\n6\n", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)

  it("completes globals and fields through '.' and ':' with Tab", function()
    local out, status = pty({
      "expect > ", "send string.fo\\t", "expect format", "send (\"%d!\", 7)\\r", "expect 7!",
      "send ser.te\\t", "expect ser.tensor", "send .is_t\\t", "expect is_tensor", "send (1)\\r", "expect false",
      "send x = ser.tensor.ones(3)\\r", "expect > ", "send x:resh\\t", "expect reshape", "send (3, 1):shape()\\r",
      "expect { 3, 1 }",
      "send s = 'abc'\\r", "expect > ", "send s:up\\t", "expect upper", "send ()\\r", "expect ABC",
      "expect > ", "send \\004",
    })
    assert.matches("> string.format(\"%d!\", 7)\n7!\n", out, 1, true)
    assert.matches("> ser.tensor.is_tensor(1)\nfalse\n", out, 1, true)
    assert.matches("> x:reshape(3, 1):shape()\n{ 3, 1 }\n", out, 1, true)
    assert.matches("> s:upper()\nABC\n", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)

  it("writes every chunk to the history file and recalls it in the next session", function()
    local hist = tmp("history")
    pty({ "expect > ", "send a = 40\\r", "expect > ", "send function f()\\r", "expect >> ",
      "send   return a + 2 end\\r", "expect > ", "send \\004" }, hist)
    local text = read(hist)
    assert.is_not_nil(text, "history file not written")
    assert.matches("a = 40\n", text, 1, true)
    assert.matches("#%d+\nfunction f%(%)\n  return a %+ 2 end\n", text)
    -- The up arrow recalls the whole multi-line definition as one entry.
    local out, status = pty({ "expect > ", "send \\e[A", "sleep 100", "send \\r", "expect > ", "send a = 1\\r",
      "expect > ", "send f()\\r", "expect 3", "expect > ", "send \\004" }, hist)
    assert.matches("> f()\n3\n", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)

  it("keeps the last 1000 history entries when it rewrites the file on exit", function()
    local hist = tmp("history")
    local old = {}
    for i = 1, 1100 do old[#old + 1] = ("#%d\nold_%d = %d\n"):format(1700000000 + i, i, i) end
    write(hist, table.concat(old))
    local _, status = pty({ "expect > ", "send newest = 1\\r", "expect > ", "send \\004" }, hist)
    assert.are.equal("[exit 0]", status)
    local text = read(hist)
    local entries = select(2, text:gsub("#%d+\n", ""))
    assert.are.equal(1000, entries)
    assert.matches("newest = 1\n$", text)
    assert.is_nil(text:find("old_101 = ", 1, true))
    assert.matches("\nold_102 = 102\n", text, 1, true)
    -- Written by rename: no temporary file is left next to it.
    local p = io.popen("ls " .. q(tmpdir))
    local listing = p:read("a")
    p:close()
    assert.is_nil(listing:find("history.tmp", 1, true))
  end)

  it("warns once and goes on when the history file cannot be written", function()
    local out, status = pty({ "expect > ", "send 1\\r", "expect > ", "send 2\\r", "expect > ", "send \\004" },
      tmp("no-such-dir/history"))
    assert.are.equal("[exit 0]", status)
    local _, warnings = out:gsub("cannot write history file", "")
    assert.are.equal(1, warnings)
    assert.matches("> 2\n2\n", out, 1, true)
  end)

  it("uses _PROMPT and _PROMPT2 as lua does", function()
    -- Built by concatenation so that the echo of this line does not match the prompt.
    local out, status = pty({ "expect > ", "send _PROMPT = 'P' .. '1> '; _PROMPT2 = 'P' .. '2> '\\r",
      "expect P1> ", "send f = function()\\r", "expect P2> ", "send end\\r", "expect P1> ", "send \\004" })
    assert.are.equal("[exit 0]", status, out)
  end)

  it("interrupts a running computation with Ctrl-C and keeps the session", function()
    local out, status = pty({
      "expect > ", "send n = 0\\r", "expect > ", "send while true do n = n + 1 end\\r",
      "expect n + 1 end\\r\\n", "sleep 200", "send \\003",  -- the line was accepted: the loop runs
      "expect interrupted!", "expect > ", "send n > 0\\r", "expect true", "expect > ", "send \\004",
    })
    assert.matches("interrupted!", out, 1, true)
    assert.matches("> n > 0\ntrue\n", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)

  it("clears the line on Ctrl-C at the prompt, also inside a multi-line chunk", function()
    local out, status = pty({
      "expect > ", "send oops = 1", "sleep 100", "send \\003", "expect > ",
      "send for i = 1, 3 do\\r", "expect >> ", "send \\003", "expect > ",
      "send oops\\r", "expect nil", "expect > ", "send \\004",
    })
    assert.matches("> oops\nnil\n", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)

  it("survives a Ctrl-C pressed together with Enter, whichever moment it lands", function()
    for _ = 1, 3 do
      local out, status = pty({
        "expect > ", "send while true do end\\r\\003", "expect > ", "send 1 + 1\\r", "expect 2",
        "expect > ", "send \\004",
      })
      assert.are.equal("[exit 0]", status, out)
    end
  end)

  it("reports errors and goes on", function()
    local out, status = pty({ "expect > ", "send error('bad')\\r", "expect stack traceback", "expect > ",
      "send 1 + 1\\r", "expect 2", "expect > ", "send \\004" })
    assert.matches("stdin:1: bad", out, 1, true)
    assert.are.equal("[exit 0]", status)
  end)
end)

describe("ser.repl helpers", function()
  local ser = require "ser"
  local R = require "ser.repl"

  it("formats values like the REPL echo", function()
    assert.are.equal("1\tnil\tx", R.format(1, nil, "x"))
    assert.are.equal("{ 1, 2, { 3 } }", R.format({ 1, 2, { 3 } }))
    assert.are.equal('{ "1", 1 }', R.format({ "1", 1 }))
    assert.are.equal("{ [1.5] = true, [false] = 0 }", R.format({ [1.5] = true, [false] = 0 }))
    local shared = { 1 }
    assert.are.equal("{ a = { 1 }, b = { 1 } }", R.format({ a = shared, b = shared }))
  end)

  it("breaks long tables over lines and limits the entries shown", function()
    local t = {}
    for i = 1, 150 do t[i] = i * 1000 end
    local s = R.format(t)
    assert.matches("^{\n  1000,\n  2000,\n", s)
    assert.matches("\n  %.%.%. %(50 more%)\n}$", s)
  end)

  it("puts a multi-line __tostring on lines of its own inside a table", function()
    local v = setmetatable({}, { __tostring = function() return "line one\nline two" end })
    assert.are.equal("{\n  v =\n    line one\n    line two\n}", R.format({ v = v }))
    assert.are.equal("line one\nline two", R.format(v))
  end)

  it("completes globals, keywords and fields, without running __index functions", function()
    local called = false
    local env = {
      alpha = 1, alps = {}, _hidden = 1,
      obj = setmetatable({ own = 1 }, { __index = { method = function() end, field = 2 } }),
      trap = setmetatable({}, { __index = function() called = true end }),
    }
    assert.are.same({ "alpha", "alps", "and" }, R.complete("a", env))
    assert.are.same({ "_hidden" }, R.complete("_", env))
    assert.are.same({ "obj.field", "obj.method", "obj.own" }, R.complete("obj.", env))
    assert.are.same({ "obj:method" }, R.complete("obj:", env))
    assert.are.same({}, R.complete("trap.x", env))
    assert.are.same({}, R.complete("nothing.here", env))
    assert.is_false(called)
  end)

  it("completes tensor methods through the binding's metatable", function()
    local env = { x = ser.tensor.zeros(2), string = string }
    local found = R.complete("x:res", env)
    assert.is_true(#found > 0)
    for _, c in ipairs(found) do assert.matches("^x:res", c) end
    assert.are.same({ "string.format" }, R.complete("string.form", env))
  end)
end)
end)
