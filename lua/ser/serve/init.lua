-- ser.serve: serve.lua's web server. ser.core.http (libmicrohttpd, src/http/) moves the
-- bytes; ser.serve.app answers. The loop runs on the one Lua thread: srv:next() drives
-- the server's sockets until a request is complete, the app computes its answer,
-- srv:respond() hands it back (src/http/server.h says why there are no threads).
--
--   local app = ser.serve.app.new(model, meta, { hop = 0.5 })
--   ser.serve.run(app, { host = "127.0.0.1", port = 8080, on_listen = function(url) print(url) end })
local http = require "ser.core.http"

local M = {}
M.app = require "ser.serve.app"
M.json = require "ser.serve.json"

-- o: host, port, max_body (bytes), timeout (seconds a connection may idle),
-- max_connections, on_listen(url, port), log(line) (one line per request; nil: quiet),
-- max_requests (stop after that many; benchmarks), should_stop() (checked between requests).
function M.run(app, o)
  o = o or {}
  local srv = http.listen { host = o.host, port = o.port, max_body = o.max_body, timeout = o.timeout,
    max_connections = o.max_connections }
  local host = o.host or "127.0.0.1"
  local url = ("http://%s:%d/"):format(host:find(":") and ("[" .. host .. "]") or host, srv:port())
  if o.on_listen then o.on_listen(url, srv:port()) end
  local served = 0
  while not (o.max_requests and served >= o.max_requests) and not (o.should_stop and o.should_stop()) do
    local req = srv:next(1.0)
    if req then
      local t0 = os.clock()
      local status, ctype, body, headers = app:handle(req)
      srv:respond(req.id, status, ctype, body, headers)
      served = served + 1
      if o.log then
        o.log(("%s %s %d %d bytes in, %d out, %.0f ms cpu"):format(req.method, req.path, status, #req.body, #body,
          (os.clock() - t0) * 1000))
      end
    end
  end
  -- a few short passes send the last answers; requests that arrive meanwhile are turned away
  for _ = 1, 10 do
    local late = srv:next(0.02)
    if late then
      srv:respond(late.id, 503, "application/json", M.json.encode({ error = "the server is stopping" }))
    end
  end
  srv:close()
  return served
end

return M
