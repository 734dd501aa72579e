/* ser.core.checkpoint: ser.save / ser.load over safetensors files.
 *
 *   save(path, state_dict, meta [, {dtype = "F32" | "F16" | "BF16"}]) -> true | nil, message
 *     (file-system failures). state_dict: {name = tensor, ...}; meta: nil or
 *     {key = Lua value}; dtype: how every tensor is stored (default F32; F16 and
 *     BF16 round to nearest even, half the size, lossy). Each meta
 *     value is stored JSON-encoded (safetensors metadata is string -> string), and
 *     "format" = "serlua-1" is added. Bad arguments raise.
 *   load(path) -> state_dict, meta | nil, message
 *     For a serlua file the meta values are decoded back from JSON; a file from
 *     elsewhere (no "format" key, e.g. written by PyTorch) keeps its raw strings.
 *     A file from a newer serlua format is refused with a message saying so.
 *     A PyTorch .pt (torch.save of a state_dict, zip format; src/io/torch_zip.h) loads
 *     too, recognised by its first bytes whatever its name: its tensors as float32, an
 *     empty meta table. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "io/torch_zip.h"
#include "luat.h"

#define JSON_MAX_DEPTH 32

/* Lua value at idx -> new cJSON item; NULL with a message in *err on a value JSON cannot hold. */
static cJSON *to_json(lua_State *L, int idx, int depth, const char **err) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TSTRING: {
      size_t len;
      const char *str = lua_tolstring(L, idx, &len);
      if (strlen(str) != len) {
        *err = "a string with a NUL byte (the file's JSON strings cannot hold one)";
        return NULL;
      }
      return cJSON_CreateString(str);
    }
    case LUA_TNUMBER: {
      const double v = lua_tonumber(L, idx);
      if (!isfinite(v)) {
        *err = "a NaN or infinite number (JSON has none)";
        return NULL;
      }
      return cJSON_CreateNumber(v);
    }
    case LUA_TTABLE: break;
    default: {
      /* not pushed on the Lua stack: the callers' table traversals rely on its layout */
      static _Thread_local char msg[96];
      snprintf(msg, sizeof msg, "a %s (only strings, numbers, booleans and tables)", luaL_typename(L, idx));
      *err = msg;
      return NULL;
    }
  }
  if (depth >= JSON_MAX_DEPTH) {
    *err = "a table nested too deeply (a cycle?)";
    return NULL;
  }
  /* A table whose keys are exactly 1..#t is an array; anything else an object with string keys. */
  const lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lua_Integer count = 0;
  int all_string = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) != LUA_TSTRING) all_string = 0;
    lua_pop(L, 1);
  }
  const int is_array = n > 0 && count == n;
  if (!is_array && !all_string) {
    *err = "a table mixing array and non-string keys";
    return NULL;
  }
  cJSON *out = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
  if (!out) return NULL;
  if (is_array) {
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      cJSON *item = to_json(L, -1, depth + 1, err);
      lua_pop(L, 1);
      if (!item || !cJSON_AddItemToArray(out, item)) {
        cJSON_Delete(item);
        cJSON_Delete(out);
        return NULL;
      }
    }
  } else {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      cJSON *item = to_json(L, -1, depth + 1, err);
      if (!item || !cJSON_AddItemToObject(out, lua_tostring(L, -2), item)) {
        cJSON_Delete(item);
        cJSON_Delete(out);
        lua_pop(L, 2);
        return NULL;
      }
      lua_pop(L, 1);
    }
  }
  return out;
}

static void push_json(lua_State *L, const cJSON *j) {
  luaL_checkstack(L, 4, "checkpoint metadata nests too deeply");
  if (cJSON_IsBool(j)) {
    lua_pushboolean(L, cJSON_IsTrue(j));
  } else if (cJSON_IsNumber(j)) {
    const double v = j->valuedouble;
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
      lua_pushinteger(L, (lua_Integer)v);
    else
      lua_pushnumber(L, v);
  } else if (cJSON_IsString(j)) {
    lua_pushstring(L, j->valuestring);
  } else if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    int i = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
      push_json(L, it);
      lua_rawseti(L, -2, i++);
    }
  } else if (cJSON_IsObject(j)) {
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
      push_json(L, it);
      lua_setfield(L, -2, it->string);
    }
  } else {
    lua_pushnil(L); /* JSON null */
  }
}

/* Sorted names make the error for a bad entry deterministic; the writer sorts anyway. */
static int l_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!lua_istable(L, 2))
    return luaL_error(L, "ser.save: state_dict must be a table of name -> tensor, got %s", luaL_typename(L, 2));
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    return luaL_error(L, "ser.save: meta must be a table or nil, got %s", luaL_typename(L, 3));
  static const char *const opt_keys[] = {"dtype", NULL};
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  ser_lua_checkoptions(L, 4, opt_keys, "ser.save");
  ser_st_dtype dtype = SER_ST_F32;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "dtype");
    const char *d = lua_tostring(L, -1);
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) == LUA_TSTRING && strcmp(d, "F32") == 0) dtype = SER_ST_F32;
      else if (lua_type(L, -1) == LUA_TSTRING && strcmp(d, "F16") == 0) dtype = SER_ST_F16;
      else if (lua_type(L, -1) == LUA_TSTRING && strcmp(d, "BF16") == 0) dtype = SER_ST_BF16;
      else
        return luaL_error(L, "ser.save: option 'dtype' must be \"F32\", \"F16\" or \"BF16\", got %s",
                          luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
  }
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "ser.save: state_dict key %s is a %s, expected a string name",
                        luaL_tolstring(L, -2, NULL), luaL_typename(L, -3));
    if (strlen(lua_tostring(L, -2)) != lua_rawlen(L, -2))
      return luaL_error(L, "ser.save: state_dict key '%s...' contains a NUL byte", lua_tostring(L, -2));
    if (!ser_lua_totensor(L, -1))
      return luaL_error(L, "ser.save: state_dict['%s'] is a %s, expected a tensor", lua_tostring(L, -2),
                        luaL_typename(L, -1));
    n++;
    lua_pop(L, 1);
  }
  /* Arrays as userdata so that a Lua error below frees them with the GC. */
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  ser_tensor **ts = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(n + 1), 0);
  ser_st_dtype *dtypes = lua_newuserdatauv(L, sizeof(ser_st_dtype) * (size_t)(n + 1), 0);
  for (int i = 0; i < n; i++) dtypes[i] = dtype;
  int k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    names[k] = lua_tostring(L, -2); /* the state_dict keeps keys and tensors alive */
    ts[k] = ser_lua_totensor(L, -1);
    k++;
    lua_pop(L, 1);
  }
  int n_meta = 1;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING || strlen(lua_tostring(L, -2)) != lua_rawlen(L, -2))
        return luaL_error(L, "ser.save: meta key %s is not a string without NUL bytes", luaL_tolstring(L, -2, NULL));
      if (strcmp(lua_tostring(L, -2), SER_CHECKPOINT_FORMAT_KEY) == 0)
        return luaL_error(L, "ser.save: meta key '%s' is reserved (it records the file format version)",
                          SER_CHECKPOINT_FORMAT_KEY);
      n_meta++;
      lua_pop(L, 1);
    }
  }
  const char **mk = lua_newuserdatauv(L, sizeof(char *) * (size_t)n_meta, 0);
  const char **mv = lua_newuserdatauv(L, sizeof(char *) * (size_t)n_meta, 0);
  const int strings = lua_gettop(L) + 1;
  lua_newtable(L); /* keeps the encoded strings alive until the write is done */
  mk[0] = SER_CHECKPOINT_FORMAT_KEY;
  mv[0] = SER_CHECKPOINT_FORMAT;
  int m = 1;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *err = "out of memory";
      cJSON *j = to_json(L, -1, 0, &err);
      char *s = j ? cJSON_PrintUnformatted(j) : NULL;
      cJSON_Delete(j);
      if (!s) return luaL_error(L, "ser.save: meta['%s'] is %s", lua_tostring(L, -2), err);
      lua_pushstring(L, s);
      cJSON_free(s);
      mv[m] = lua_tostring(L, -1);
      lua_rawseti(L, strings, m);
      mk[m] = lua_tostring(L, -2);
      m++;
      lua_pop(L, 1);
    }
  }
  if (ser_safetensors_write_as(path, n, names, ts, dtypes, n_meta, mk, mv)) {
    lua_pushnil(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* "serlua-N" -> N, or 0 when the string is not of that form. */
static long format_version(const char *s) {
  const size_t p = strlen("serlua-");
  if (strncmp(s, "serlua-", p) != 0) return 0;
  char *end;
  const long v = strtol(s + p, &end, 10);
  return *end == '\0' && v > 0 ? v : 0;
}

static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ser_safetensors *st;
  if (ser_torch_sniff(path) ? ser_torch_read(&st, path) : ser_safetensors_read(&st, path)) {
    lua_pushnil(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  const char *fmt = ser_safetensors_meta(st, SER_CHECKPOINT_FORMAT_KEY);
  const long ours = format_version(SER_CHECKPOINT_FORMAT);
  if (fmt) {
    const long v = format_version(fmt);
    if (v == 0 || v > ours) {
      lua_pushnil(L);
      if (v > ours)
        lua_pushfstring(L, "%s: written by a newer serlua (format %s); this build reads up to %s", path, fmt,
                        SER_CHECKPOINT_FORMAT);
      else
        lua_pushfstring(L, "%s: unknown checkpoint format '%s' (expected %s)", path, fmt, SER_CHECKPOINT_FORMAT);
      ser_safetensors_free(st);
      return 2;
    }
  }
  /* Decode the metadata before creating anything the GC would have to clean up. */
  for (int i = 0; fmt && i < st->n_meta; i++) {
    if (strcmp(st->meta_keys[i], SER_CHECKPOINT_FORMAT_KEY) == 0) continue;
    cJSON *j = cJSON_Parse(st->meta_values[i]);
    if (!j) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: metadata '%s' is not valid JSON: %s", path, st->meta_keys[i], st->meta_values[i]);
      ser_safetensors_free(st);
      return 2;
    }
    cJSON_Delete(j);
  }
  lua_createtable(L, 0, st->n);
  for (int i = 0; i < st->n; i++) {
    ser_lua_pushtensor(L, ser_tensor_retain(st->tensors[i]));
    lua_setfield(L, -2, st->names[i]);
  }
  lua_createtable(L, 0, st->n_meta);
  for (int i = 0; i < st->n_meta; i++) {
    cJSON *j = NULL;
    if (fmt && strcmp(st->meta_keys[i], SER_CHECKPOINT_FORMAT_KEY) != 0 && (j = cJSON_Parse(st->meta_values[i]))) {
      push_json(L, j);
      cJSON_Delete(j);
    } else {
      lua_pushstring(L, st->meta_values[i]);
    }
    lua_setfield(L, -2, st->meta_keys[i]);
  }
  ser_safetensors_free(st);
  return 2;
}

int ser_lua_open_checkpoint(lua_State *L) {
  static const luaL_Reg fns[] = {{"save", l_save}, {"load", l_load}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
