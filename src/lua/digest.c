/* ser.core.digest: SHA-256 content keys (src/io/sha256.h) for the embedding cache.
 *   sha256(string)    -> 64 hex digits
 *   sha256_file(path) -> 64 hex digits, or nil and a message (the path and why)
 *   sha256_tensor(t)  -> 64 hex digits of a contiguous tensor's float32 bytes (and its shape),
 *                        the identity of an in-memory dataset in a training state */
#include <stdio.h>

#include "io/sha256.h"
#include "luat.h"

static int l_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[65];
  ser_sha256_hex(hex, s, len);
  lua_pushstring(L, hex);
  return 1;
}

static int l_sha256_file(lua_State *L) {
  char hex[65];
  if (ser_sha256_file(hex, luaL_checkstring(L, 1)) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

static int l_sha256_tensor(lua_State *L) {
  ser_tensor *t = ser_lua_checktensor(L, 1);
  if (!ser_tensor_is_contiguous(t))
    return luaL_error(L, "sha256_tensor: the tensor is not contiguous; hash t:contiguous()");
  /* the shape first, so [2,3] and [3,2] with the same numbers differ */
  ser_sha256 h;
  ser_sha256_init(&h);
  for (int d = 0; d < t->ndim; d++) {
    const int64_t n = t->shape[d];
    ser_sha256_update(&h, &n, sizeof n);
  }
  ser_sha256_update(&h, ser_tensor_data(t), (size_t)ser_tensor_numel(t) * sizeof(float));
  uint8_t out[32];
  ser_sha256_final(&h, out);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
  lua_pushstring(L, hex);
  return 1;
}

int ser_lua_open_digest(lua_State *L) {
  static const luaL_Reg fns[] = {{"sha256", l_sha256}, {"sha256_file", l_sha256_file},
                                  {"sha256_tensor", l_sha256_tensor}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
