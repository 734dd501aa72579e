/* Shared helpers of the Lua bindings: tensor userdata, error raising, option tables.
 * The only header that includes both lua.h and the core. */
#ifndef SER_LUA_LUAT_H
#define SER_LUA_LUAT_H

#include <lauxlib.h>
#include <lua.h>

#include "ser.h"

#define SER_TENSOR_MT "ser.Tensor"

/* Tensor userdata: a box holding one reference (NULL after __gc/__close). */
ser_tensor *ser_lua_checktensor(lua_State *L, int idx);
ser_tensor *ser_lua_opttensor(lua_State *L, int idx);      /* nil/none -> NULL */
ser_tensor *ser_lua_totensor(lua_State *L, int idx);       /* NULL if not a live tensor */
/* Pushes t as userdata, taking over the caller's reference. t == NULL raises
 * the pending core error (so `ser_lua_pushtensor(L, ser_tensor_zeros(...))` is safe). */
void ser_lua_pushtensor(lua_State *L, ser_tensor *t);
/* Accepts a tensor, a number (-> 0-d tensor) or a nested table of numbers.
 * Returns a borrowed tensor: a converted value replaces the stack slot idx, so
 * the Lua stack owns it and a later error leaks nothing. */
ser_tensor *ser_lua_checktensorlike(lua_State *L, int idx, const char *fname);

/* Raises "fname: <message of the last core error>". Never returns. */
int ser_lua_fail(lua_State *L, const char *fname);
#define SER_LUA_TRY(L, fname, expr)            \
  do {                                         \
    if ((expr) < 0) ser_lua_fail(L, fname);    \
  } while (0)

/* Lua dim (1-based, negative from the end) -> 0-based, checked against ndim. */
int ser_lua_checkdim(lua_State *L, int idx, int ndim, const char *fname);
/* Reads a shape from varargs (T.zeros(2,3)) or one table (T.zeros{2,3}) starting at idx. */
int ser_lua_checkshape(lua_State *L, int idx, int64_t *shape, const char *fname);

/* Option tables: opts may be nil. Wrong types raise "fname: option 'key' must be ...". */
double ser_lua_optnumber(lua_State *L, int opts, const char *key, double def, const char *fname);
lua_Integer ser_lua_optinteger(lua_State *L, int opts, const char *key, lua_Integer def, const char *fname);
int ser_lua_optboolean(lua_State *L, int opts, const char *key, int def, const char *fname);
const char *ser_lua_optstring(lua_State *L, int opts, const char *key, const char *def, const char *fname);

/* Raises "fname: unknown option 'k' (expected a, b, c)" for any key of the
 * options table (may be nil) not in the NULL-terminated list: a misspelt
 * option would otherwise be ignored silently. */
void ser_lua_checkoptions(lua_State *L, int opts, const char *const *known, const char *fname);

/* The option `lengths` of the options table at index opts (none, nil or no such key: NULL):
 * one whole number in 1..max per clip of x's batch (its first dim), `unit` naming them in
 * messages ("frame", "sample"). The table may hold no other option (an encoder call's only
 * one; another key is refused as misspelt). The array lives in a userdata pushed on the stack
 * (freed by the GC). Raises "fname: ..." on anything else. */
int32_t *ser_lua_checklengths(lua_State *L, int opts, const ser_tensor *x, const char *fname, const char *unit,
                              lua_Integer max);

/* Pushes a list { ts[0], ..., ts[n-1] }, taking over the n references (the encoders'
 * hidden states: every binding that returns per-layer outputs hands them back this way). */
void ser_lua_pushtensorlist(lua_State *L, ser_tensor *const *ts, int n);

/* Pushes { [name] = tensor } for the n tensors get(obj, i, &name) borrows (an encoder's
 * weights under their checkpoint names): copies when clone is set, so writing into them
 * leaves obj as it was, else new references to obj's own tensors. */
typedef ser_tensor *(*ser_lua_named_tensor_fn)(const void *obj, int i, const char **name);
void ser_lua_pushnamedtensors(lua_State *L, const void *obj, int n, ser_lua_named_tensor_fn get, int clone);

/* A userdata holding one pointer to a core object (the pretrained encoders), NULL until it is
 * set and again once freed. newbox pushes one with metatable mt; checkbox returns the pointer
 * or raises "<what> was already released"; takebox returns it and empties the box, for an
 * idempotent __gc / __close. */
void **ser_lua_newbox(lua_State *L, const char *mt);
void *ser_lua_checkbox(lua_State *L, int idx, const char *mt, const char *what);
void *ser_lua_takebox(lua_State *L, int idx, const char *mt);

/* Creates the metatable mt of a userdata that owns a resource (once; then pops it): gc as
 * both __gc and __close (so it must be idempotent), methods (may be NULL) as __index, and
 * tostring (may be NULL) as __tostring. */
void ser_lua_newclass(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction tostring);

/* t[k] = v for the table on top of the stack (config tables). */
void ser_lua_setint(lua_State *L, const char *k, lua_Integer v);
void ser_lua_setbool(lua_State *L, const char *k, int v);

/* Feature options (ser.features' names: sr, n_fft, hop, n_mels, ...) from the table at idx
 * (may be nil) over ser_feat_opts_for(kind); unknown keys and wrong types raise
 * "fname: ...". The one parser for every binding that takes feature options
 * (src/lua/features.c). */
ser_feat_opts ser_lua_checkfeatopts(lua_State *L, int idx, ser_feat_kind kind, const char *fname);

/* Tells the garbage collector about tensor memory (called after allocations). */
void ser_lua_account(lua_State *L);

/* Module openers, registered in src/lua/module.c as package.preload["ser.core.<area>"]. */
int luaopen_ser(lua_State *L);
int ser_lua_open_base(lua_State *L);
int ser_lua_open_tensor(lua_State *L);
int ser_lua_open_data(lua_State *L);
int ser_lua_open_nn_rnn(lua_State *L);
int ser_lua_open_optim(lua_State *L);
int ser_lua_open_checkpoint(lua_State *L);
int ser_lua_open_audio(lua_State *L);
int ser_lua_open_features(lua_State *L);
int ser_lua_open_fs(lua_State *L);
int ser_lua_open_augment(lua_State *L);
int ser_lua_open_eval(lua_State *L);
int ser_lua_open_nn_functional_cnn(lua_State *L);
int ser_lua_open_pretrained(lua_State *L);
int ser_lua_open_wav2vec2(lua_State *L);
int ser_lua_open_nn_transformer(lua_State *L);
int ser_lua_open_digest(lua_State *L);
int ser_lua_open_dist(lua_State *L);
int ser_lua_open_onnx(lua_State *L);
int ser_lua_open_http(lua_State *L);
int ser_lua_open_stream(lua_State *L);

#endif
