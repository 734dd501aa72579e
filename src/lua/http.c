/* ser.core.http: the HTTP server of src/http/ (libmicrohttpd) for Lua, and the web
 * page's files compiled into the binary.
 *
 *   local srv = http.listen{ host = "127.0.0.1", port = 0, max_body = 1e6, timeout = 30, max_connections = 64 }
 *   srv:port()                      --> the port listened on (an ephemeral one for port = 0)
 *   local req = srv:next(0.5)       --> nil after 0.5 s without a request, else
 *       { id, method, path, content_type, args = { name = value }, body = "..." }
 *   srv:respond(req.id, 200, "application/json", '{"ok": true}', { Allow = "GET" })
 *   srv:close()                     -- also __gc / __close
 *   http.asset("index.html")        --> bytes, mime type (nil when there is no such file) */
#include <string.h>

#include "http/server.h"
#include "luat.h"

#define SERVER_MT "ser.HttpServer"

typedef struct {
  const char *name, *mime;
  const unsigned char *data;
  size_t len;
} ser_embedded_web;
extern const ser_embedded_web ser_embedded_web_files[]; /* build/gen/embedded_web.c (scripts/embed-web.lua) */

typedef struct {
  ser_http_server *s;
} server_box;

static ser_http_server *check_server(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  if (!b->s) luaL_error(L, "http server: it is closed");
  return b->s;
}

static int l_listen(lua_State *L) {
  static const char *const keys[] = {"host", "port", "max_body", "timeout", "max_connections", NULL};
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  ser_lua_checkoptions(L, 1, keys, "http.listen");
  ser_http_opts o = ser_http_opts_default();
  o.host = ser_lua_optstring(L, 1, "host", o.host, "http.listen");
  lua_Integer port = ser_lua_optinteger(L, 1, "port", o.port, "http.listen");
  double max_body = ser_lua_optnumber(L, 1, "max_body", (double)o.max_body, "http.listen");
  double timeout = ser_lua_optnumber(L, 1, "timeout", o.timeout_s, "http.listen");
  lua_Integer conns = ser_lua_optinteger(L, 1, "max_connections", o.max_connections, "http.listen");
  if (port < 0 || port > 65535) return luaL_error(L, "http.listen: port %d is out of range (expected 0..65535)", (int)port);
  if (!(max_body >= 1 && max_body <= 4e9))
    return luaL_error(L, "http.listen: max_body %f is out of range (expected 1 byte .. 4 GB)", max_body);
  if (!(timeout >= 1 && timeout <= 86400))
    return luaL_error(L, "http.listen: timeout %f is out of range (expected 1 .. 86400 seconds)", timeout);
  if (conns < 1 || conns > 4096)
    return luaL_error(L, "http.listen: max_connections %d is out of range (expected 1 .. 4096)", (int)conns);
  o.port = (int)port;
  o.max_body = (size_t)max_body;
  o.timeout_s = (unsigned)timeout;
  o.max_connections = (unsigned)conns;
  /* the userdata exists (empty) before the server does, so a raise leaks nothing */
  server_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->s = NULL;
  luaL_setmetatable(L, SERVER_MT);
  if (ser_http_start(&b->s, &o) < 0) ser_lua_fail(L, "http.listen");
  return 1;
}

static int l_port(lua_State *L) {
  lua_pushinteger(L, ser_http_port(check_server(L)));
  return 1;
}

static int l_pending(lua_State *L) {
  lua_pushinteger(L, ser_http_pending(check_server(L)));
  return 1;
}

static int l_next(lua_State *L) {
  ser_http_server *s = check_server(L);
  double timeout = luaL_optnumber(L, 2, 0.0);
  const ser_http_request *r = NULL;
  int rc = ser_http_next(s, &r, timeout);
  if (rc < 0) return ser_lua_fail(L, "http server:next");
  if (rc == 0) return 0;
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, r->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, r->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, r->content_type);
  lua_setfield(L, -2, "content_type");
  lua_createtable(L, 0, r->n_args);
  for (int i = 0; i < r->n_args; i++) {
    lua_pushstring(L, r->arg_values[i]);
    lua_setfield(L, -2, r->arg_names[i]);
  }
  lua_setfield(L, -2, "args");
  lua_pushlstring(L, (const char *)(r->body ? r->body : (const unsigned char *)""), r->body_len);
  lua_setfield(L, -2, "body");
  return 1;
}

static int l_respond(lua_State *L) {
  ser_http_server *s = check_server(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  lua_Integer status = luaL_checkinteger(L, 3);
  const char *ctype = luaL_checkstring(L, 4);
  size_t len = 0;
  const char *body = luaL_optlstring(L, 5, "", &len);
  enum { MAX_HEADERS = 8 };
  const char *headers[2 * MAX_HEADERS + 1] = {NULL};
  if (!lua_isnoneornil(L, 6)) {
    luaL_checktype(L, 6, LUA_TTABLE);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 6)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "http server:respond: headers must map names to strings");
      if (n == MAX_HEADERS) return luaL_error(L, "http server:respond: more than %d headers", MAX_HEADERS);
      headers[2 * n] = lua_tostring(L, -2); /* both stay referenced by the table at 6 */
      headers[2 * n + 1] = lua_tostring(L, -1);
      n++;
      lua_pop(L, 1);
    }
  }
  if (ser_http_respond(s, (uint64_t)id, (int)status, ctype, body, len, headers) < 0)
    return ser_lua_fail(L, "http server:respond");
  return 0;
}

static int l_close(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  ser_http_stop(b->s);
  b->s = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  if (b->s) lua_pushfstring(L, "HttpServer(port %d)", ser_http_port(b->s));
  else lua_pushliteral(L, "HttpServer(closed)");
  return 1;
}

static int l_asset(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (const ser_embedded_web *w = ser_embedded_web_files; w->name; w++) {
    if (strcmp(w->name, name) != 0) continue;
    lua_pushlstring(L, (const char *)w->data, w->len);
    lua_pushstring(L, w->mime);
    return 2;
  }
  return 0;
}

int ser_lua_open_http(lua_State *L) {
  static const luaL_Reg methods[] = {{"port", l_port},   {"next", l_next},   {"respond", l_respond},
                                     {"close", l_close}, {"pending", l_pending}, {NULL, NULL}};
  ser_lua_newclass(L, SERVER_MT, methods, l_close, l_tostring);
  static const luaL_Reg fns[] = {{"listen", l_listen}, {"asset", l_asset}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
