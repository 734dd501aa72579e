/* ser.core.nn_rnn: the LSTM and the losses for ser.nn.functional.
 *   F.lstm(x, weights, {hidden_size=, num_layers=1, bias=true, batch_first=false,
 *          bidirectional=false}) -> out, h_n, c_n
 *   F.cross_entropy(logits, targets, {weight=, label_smoothing=0}) -> scalar
 *   F.nll_loss(log_probs, targets, {weight=}) -> scalar
 *   F.mse_loss(input, target) -> scalar
 * Targets are 1-based class numbers (Torch7 style): a tensor holding whole
 * numbers or a Lua array. They are checked here, so that a bad one is reported
 * in the 1-based terms the caller used, then shifted to the core's 0-based. */
#include <math.h>
#include <string.h>

#include "luat.h"

/* Converts targets at idx (tensor or array of numbers) into a new 0-based
 * float tensor [N], raising a 1-based message for a value outside 1..C. */
static ser_tensor *check_targets(lua_State *L, int idx, int64_t N, int64_t C, const char *fname) {
  if (!ser_lua_totensor(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: targets must be a tensor or an array of class numbers (1..%d), got %s", fname, (int)C,
               luaL_typename(L, idx));
  /* borrowed: a converted table replaces the argument on the stack, which owns it */
  ser_tensor *y = ser_lua_checktensorlike(L, idx, fname);
  if (y->ndim != 1 || y->shape[0] != N) {
    const char *s = SER_SHAPE(y);
    luaL_error(L, "%s: targets have shape %s, expected [%d] (one class number per row of the input)", fname, s,
               (int)N);
  }
  ser_tensor *z = ser_tensor_empty(1, y->shape);
  if (!z) ser_lua_fail(L, fname);
  for (int64_t i = 0; i < N; i++) {
    const float v = ser_tensor_get_flat(y, i);
    if (!(v >= 1 && v <= (float)C) || v != floorf(v)) {
      ser_tensor_release(z);
      luaL_error(L, "%s: target %f at position %d is not a class number; expected a whole number in 1..%d "
                 "(targets are 1-based)", fname, (double)v, (int)(i + 1), (int)C);
    }
    ser_tensor_data(z)[i] = v - 1.0f;
  }
  return z;
}

/* Optional field `key` of the options table at opts: a tensor or nil. */
static ser_tensor *opt_tensor_field(lua_State *L, int opts, const char *key, const char *fname) {
  if (lua_isnoneornil(L, opts)) return NULL;
  lua_getfield(L, opts, key);
  ser_tensor *t = NULL;
  if (!lua_isnil(L, -1)) {
    t = ser_lua_totensor(L, -1);
    if (!t) luaL_error(L, "%s: option '%s' must be a tensor, got %s", fname, key, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return t; /* borrowed: the options table keeps it alive during the call */
}


static const char *const ce_keys[] = {"weight", "label_smoothing", NULL};
static const char *const nll_keys[] = {"weight", NULL};
static const char *const lstm_keys[] = {"hidden_size", "num_layers", "bias", "batch_first", "bidirectional", NULL};

static int l_cross_entropy(lua_State *L) {
  const char *fn = "cross_entropy";
  ser_tensor *z = ser_lua_checktensor(L, 1);
  ser_lua_checkoptions(L, 3, ce_keys, fn);
  if (z->ndim != 2) luaL_error(L, "%s: input has shape %s, expected [N, C] logits", fn, SER_SHAPE(z));
  ser_tensor *w = opt_tensor_field(L, 3, "weight", fn);
  const double ls = ser_lua_optnumber(L, 3, "label_smoothing", 0.0, fn);
  ser_tensor *y = check_targets(L, 2, z->shape[0], z->shape[1], fn);
  ser_tensor *out;
  const int rc = ser_cross_entropy(&out, z, y, w, ls);
  ser_tensor_release(y);
  if (rc) return ser_lua_fail(L, fn);
  ser_lua_pushtensor(L, out);
  return 1;
}

static int l_nll_loss(lua_State *L) {
  const char *fn = "nll_loss";
  ser_tensor *z = ser_lua_checktensor(L, 1);
  ser_lua_checkoptions(L, 3, nll_keys, fn);
  if (z->ndim != 2) luaL_error(L, "%s: input has shape %s, expected [N, C] log-probabilities", fn, SER_SHAPE(z));
  ser_tensor *w = opt_tensor_field(L, 3, "weight", fn);
  ser_tensor *y = check_targets(L, 2, z->shape[0], z->shape[1], fn);
  ser_tensor *out;
  const int rc = ser_nll_loss(&out, z, y, w);
  ser_tensor_release(y);
  if (rc) return ser_lua_fail(L, fn);
  ser_lua_pushtensor(L, out);
  return 1;
}

static int l_mse_loss(lua_State *L) {
  ser_tensor *a = ser_lua_checktensor(L, 1), *b = ser_lua_checktensor(L, 2), *out;
  if (ser_mse_loss(&out, a, b)) return ser_lua_fail(L, "mse_loss");
  ser_lua_pushtensor(L, out);
  return 1;
}

static int l_lstm(lua_State *L) {
  const char *fn = "lstm";
  ser_tensor *x = ser_lua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  ser_lua_checkoptions(L, 3, lstm_keys, fn);
  if (x->ndim != 2 && x->ndim != 3)
    luaL_error(L, "%s: input has shape %s, expected [B,T,in] (batch_first), [T,B,in] or [T,in]", fn, SER_SHAPE(x));
  ser_lstm_opts o = {0};
  o.input_size = x->shape[x->ndim - 1];
  o.num_layers = (int)ser_lua_optinteger(L, 3, "num_layers", 1, fn);
  o.bidirectional = ser_lua_optboolean(L, 3, "bidirectional", 0, fn);
  o.batch_first = ser_lua_optboolean(L, 3, "batch_first", 0, fn);
  o.no_bias = !ser_lua_optboolean(L, 3, "bias", 1, fn);
  lua_rawgeti(L, 2, 1);
  ser_tensor *w0 = ser_lua_totensor(L, -1);
  lua_pop(L, 1);
  /* hidden_size defaults to what weight_ih_l0 [4H, in] says */
  const lua_Integer H_def = w0 && w0->ndim == 2 ? w0->shape[0] / 4 : 0;
  /* the input size the weights were made for, so a wrong input is the reported mismatch */
  if (w0 && w0->ndim == 2) o.input_size = w0->shape[1];
  o.hidden_size = ser_lua_optinteger(L, 3, "hidden_size", H_def, fn);
  if (o.num_layers < 1 || o.num_layers > 64 || o.hidden_size < 1)
    luaL_error(L, "%s: num_layers %d, hidden_size %d; expected num_layers in 1..64 and hidden_size >= 1", fn,
               o.num_layers, (int)o.hidden_size);
  const int nw = ser_lstm_num_weights(&o);
  const int got = (int)lua_rawlen(L, 2);
  if (got != nw)
    luaL_error(L, "%s: expected %d weight tensors (%d layer(s), %s, %s), got %d", fn, nw, o.num_layers,
               o.bidirectional ? "bidirectional" : "one direction", o.no_bias ? "no bias" : "with bias", got);
  ser_tensor *ws[64 * 2 * 4];
  for (int i = 0; i < nw; i++) {
    lua_rawgeti(L, 2, i + 1);
    ws[i] = ser_lua_totensor(L, -1);
    if (!ws[i]) {
      char name[64];
      luaL_error(L, "%s: weight %d (%s) is a %s, expected a tensor", fn, i + 1,
                 ser_lstm_weight_name(&o, i, name, sizeof name), luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* the weights table keeps it alive */
  }
  ser_tensor *out, *hn, *cn;
  if (ser_lstm(&out, &hn, &cn, x, ws, &o)) return ser_lua_fail(L, fn);
  ser_lua_pushtensor(L, out);
  ser_lua_pushtensor(L, hn);
  ser_lua_pushtensor(L, cn);
  return 3;
}

int ser_lua_open_nn_rnn(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"lstm", l_lstm},
      {"cross_entropy", l_cross_entropy},
      {"nll_loss", l_nll_loss},
      {"mse_loss", l_mse_loss},
      {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
