/* ser.core.onnx: ONNX export (src/export/onnx.h). Converts and checks only.
 *   export(ckpt_path, out_path [, props]) -> true, or nil and a message
 *       a safetensors checkpoint with a graph description -> an ONNX file (atomic write)
 *   build(graph_json, state_dict [, props]) -> the ONNX bytes as a string, or nil and a message
 *       the same from a description's JSON text and a name -> tensor table (tests, fuzzing)
 * props: an optional table of extra metadata_props, string -> string. */
#include <stdlib.h>
#include <string.h>

#include "export/onnx.h"
#include "luat.h"

/* props table at idx (or none) -> arrays in Lua userdata (freed by the GC if a check raises). */
static void check_props(lua_State *L, int idx, const char *fname, ser_onnx_props *p) {
  p->n = 0;
  p->keys = p->values = NULL;
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: props must be a table of string -> string, got %s", fname, luaL_typename(L, idx));
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: props must map strings to strings; entry %s is a %s", fname, luaL_tolstring(L, -2, NULL),
                 luaL_typename(L, -2));
    n++;
    lua_pop(L, 1);
  }
  const char **k = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  const char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  int i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    k[i] = lua_tostring(L, -2);  /* the props table keeps the strings alive */
    v[i] = lua_tostring(L, -1);
    i++;
    lua_pop(L, 1);
  }
  p->n = n;
  p->keys = k;
  p->values = v;
}

static int l_export(lua_State *L) {
  const char *ckpt = luaL_checkstring(L, 1), *out = luaL_checkstring(L, 2);
  ser_onnx_props p;
  check_props(L, 3, "ser.onnx.export", &p);
  if (ser_onnx_export_checkpoint(ckpt, out, &p)) {
    luaL_pushfail(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_build(lua_State *L) {
  const char *graph = luaL_checkstring(L, 1);
  if (!lua_istable(L, 2)) return luaL_error(L, "ser.onnx.build: state_dict must be a table of name -> tensor, got %s", luaL_typename(L, 2));
  ser_onnx_props p;
  check_props(L, 3, "ser.onnx.build", &p);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING || !ser_lua_totensor(L, -1))
      return luaL_error(L, "ser.onnx.build: state_dict must map names to tensors; entry %s is a %s", luaL_tolstring(L, -2, NULL),
                        luaL_typename(L, -2));
    n++;
    lua_pop(L, 1);
  }
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  ser_tensor **ts = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(n + 1), 0);
  int i = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    names[i] = lua_tostring(L, -2);  /* the state_dict keeps names and tensors alive */
    ts[i] = ser_lua_totensor(L, -1);
    i++;
    lua_pop(L, 1);
  }
  unsigned char *buf;
  size_t len;
  if (ser_onnx_build(&buf, &len, graph, n, names, ts, &p)) {
    luaL_pushfail(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushlstring(L, (const char *)buf, len);
  free(buf);
  return 1;
}

int ser_lua_open_onnx(lua_State *L) {
  static const luaL_Reg fns[] = {{"export", l_export}, {"build", l_build}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushinteger(L, SER_ONNX_OPSET);
  lua_setfield(L, -2, "opset");
  return 1;
}
