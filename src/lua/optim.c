/* ser.core.optim: the C optimizer object, clipping and the schedule functions.
 * lua/ser/optim.lua builds the user-facing classes (AdamW, SGD, OneCycleLR,
 * CosineAnnealingLR) on top of this.
 *
 *   new("adamw"|"sgd", groups)   groups: { {params = {t, ...}, lr =, weight_decay =,
 *                                 beta1 =, beta2 =, eps =, momentum =, dampening =,
 *                                 nesterov =}, ... } (all fields resolved by optim.lua)
 *   o:step(), o:zero_grad([set_to_none]), o:num_groups(), o:group(g) -> table,
 *   o:set_group(g, {lr =, ...}), o:params(g) -> {t, ...},
 *   o:get_state(g, i) -> step, state1, state2 (nil before the first step),
 *   o:set_state(g, i, step, state1, state2)
 *   clip_grad_norm({t, ...}, max_norm, norm_type) -> norm
 *   ema_update({avg, ...}, {src, ...}, decay): avg = decay * avg + (1 - decay) * src
 *   onecycle(step, opts) -> lr, momentum;  cosine(step, base_lr, T_max, eta_min) -> lr
 *   scalar(x) -> 0-d tensor (optimizer and scheduler state_dicts hold their numbers as tensors)
 *   grads_numel(params) -> n; pack_grads(params, buf); unpack_grads(params, buf, scale): the flat gradient block */
#include <math.h>
#include <string.h>

#include "luat.h"
#include "optim/optim.h"

#define OPTIM_MT "ser.Optimizer"

typedef struct {
  ser_optimizer *o;
} optim_box;

static ser_optimizer *check_optim(lua_State *L, int idx) {
  optim_box *b = luaL_checkudata(L, idx, OPTIM_MT);
  if (!b->o) luaL_argerror(L, idx, "optimizer was closed");
  return b->o;
}

static int check_group(lua_State *L, ser_optimizer *o, int idx) {
  const lua_Integer g = luaL_checkinteger(L, idx);
  if (g < 1 || g > o->n_groups)
    luaL_error(L, "optimizer: no parameter group %d (the optimizer has %d)", (int)g, o->n_groups);
  return (int)g - 1;
}

/* Reads the hyper-parameter fields present in the table at idx into h. */
static void read_hparams(lua_State *L, int idx, ser_optim_hparams *h, const char *fname) {
  h->lr = ser_lua_optnumber(L, idx, "lr", h->lr, fname);
  h->weight_decay = ser_lua_optnumber(L, idx, "weight_decay", h->weight_decay, fname);
  h->beta1 = ser_lua_optnumber(L, idx, "beta1", h->beta1, fname);
  h->beta2 = ser_lua_optnumber(L, idx, "beta2", h->beta2, fname);
  h->eps = ser_lua_optnumber(L, idx, "eps", h->eps, fname);
  h->momentum = ser_lua_optnumber(L, idx, "momentum", h->momentum, fname);
  h->dampening = ser_lua_optnumber(L, idx, "dampening", h->dampening, fname);
  h->nesterov = ser_lua_optboolean(L, idx, "nesterov", h->nesterov, fname);
}

static int l_new(lua_State *L) {
  const char *kind_s = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  ser_optim_kind kind;
  if (strcmp(kind_s, "adamw") == 0)
    kind = SER_OPTIM_ADAMW;
  else if (strcmp(kind_s, "sgd") == 0)
    kind = SER_OPTIM_SGD;
  else
    return luaL_error(L, "optimizer: unknown kind '%s' (expected 'adamw' or 'sgd')", kind_s);
  const char *fname = kind == SER_OPTIM_ADAMW ? "AdamW" : "SGD";
  /* The box exists (empty) before the optimizer, so an error below leaks nothing. */
  optim_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->o = NULL;
  luaL_setmetatable(L, OPTIM_MT);
  if (ser_optimizer_new(&b->o, kind)) return ser_lua_fail(L, fname);
  const int ng = (int)lua_rawlen(L, 2);
  if (ng < 1) return luaL_error(L, "%s: no parameters given; expected a list of tensors or of groups", fname);
  for (int g = 1; g <= ng; g++) {
    lua_rawgeti(L, 2, g);
    const int gi = lua_gettop(L);
    if (!lua_istable(L, gi)) return luaL_error(L, "%s: group %d is a %s, expected a table", fname, g, luaL_typename(L, gi));
    ser_optim_hparams h = ser_optim_defaults(kind);
    read_hparams(L, gi, &h, fname);
    lua_getfield(L, gi, "params");
    if (!lua_istable(L, -1)) return luaL_error(L, "%s: group %d has no 'params' list", fname, g);
    const int n = (int)lua_rawlen(L, -1);
    ser_tensor **ps = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(n > 0 ? n : 1), 0); /* GC'd scratch */
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -2, i);
      ps[i - 1] = ser_lua_totensor(L, -1);
      if (!ps[i - 1])
        return luaL_error(L, "%s: parameter %d of group %d is a %s, expected a tensor", fname, i, g,
                          luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    if (ser_optimizer_add_group(b->o, ps, n, &h)) return ser_lua_fail(L, fname);
    lua_settop(L, gi - 1);
  }
  return 1;
}

static int l_gc(lua_State *L) {
  optim_box *b = luaL_checkudata(L, 1, OPTIM_MT);
  ser_optimizer_free(b->o);
  b->o = NULL;
  return 0;
}

static int l_step(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  if (ser_optimizer_step(o)) return ser_lua_fail(L, o->kind == SER_OPTIM_ADAMW ? "AdamW.step" : "SGD.step");
  return 0;
}

static int l_zero_grad(lua_State *L) {
  ser_optimizer_zero_grad(check_optim(L, 1), lua_toboolean(L, 2));
  return 0;
}

static int l_num_groups(lua_State *L) {
  lua_pushinteger(L, check_optim(L, 1)->n_groups);
  return 1;
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static int l_group(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  const ser_optim_hparams *h = &o->groups[check_group(L, o, 2)].h;
  lua_createtable(L, 0, 8);
  set_num(L, "lr", h->lr);
  set_num(L, "weight_decay", h->weight_decay);
  if (o->kind == SER_OPTIM_ADAMW) {
    set_num(L, "beta1", h->beta1);
    set_num(L, "beta2", h->beta2);
    set_num(L, "eps", h->eps);
  } else {
    set_num(L, "momentum", h->momentum);
    set_num(L, "dampening", h->dampening);
    lua_pushboolean(L, h->nesterov);
    lua_setfield(L, -2, "nesterov");
  }
  return 1;
}

static int l_set_group(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  const int g = check_group(L, o, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  const char *fname = o->kind == SER_OPTIM_ADAMW ? "AdamW" : "SGD";
  ser_optim_hparams h = o->groups[g].h;
  read_hparams(L, 3, &h, fname);
  /* validated before it replaces the group's values */
  if (ser_optimizer_check_hparams(o->kind, &h)) return ser_lua_fail(L, fname);
  o->groups[g].h = h;
  return 0;
}

static int l_params(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  const ser_optim_group *grp = &o->groups[check_group(L, o, 2)];
  lua_createtable(L, grp->n, 0);
  for (int i = 0; i < grp->n; i++) {
    ser_lua_pushtensor(L, ser_tensor_retain(grp->params[i].p));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int check_index(lua_State *L, ser_optimizer *o, int g, int idx) {
  const lua_Integer i = luaL_checkinteger(L, idx);
  if (i < 1 || i > o->groups[g].n)
    luaL_error(L, "optimizer: group %d has %d parameters, no parameter %d", g + 1, o->groups[g].n, (int)i);
  return (int)i - 1;
}

static int l_get_state(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  const int g = check_group(L, o, 2), i = check_index(L, o, g, 3);
  const ser_optim_param *p = &o->groups[g].params[i];
  lua_pushinteger(L, p->step);
  if (p->state1) ser_lua_pushtensor(L, ser_tensor_retain(p->state1)); else lua_pushnil(L);
  if (p->state2) ser_lua_pushtensor(L, ser_tensor_retain(p->state2)); else lua_pushnil(L);
  return 3;
}

static int l_set_state(lua_State *L) {
  ser_optimizer *o = check_optim(L, 1);
  const int g = check_group(L, o, 2), i = check_index(L, o, g, 3);
  const lua_Integer step = luaL_checkinteger(L, 4);
  ser_tensor *s1 = ser_lua_opttensor(L, 5), *s2 = ser_lua_opttensor(L, 6);
  if (ser_optimizer_set_state(o, g, i, step, s1, s2)) return ser_lua_fail(L, "load_state_dict");
  return 0;
}

/* Reads the tensor list at idx into a userdata array left on the stack. */
static ser_tensor **check_tensor_list(lua_State *L, int idx, const char *fname, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  const int n = (int)lua_rawlen(L, idx);
  ser_tensor **ts = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(n > 0 ? n : 1), 0);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    ts[i - 1] = ser_lua_totensor(L, -1);
    if (!ts[i - 1]) luaL_error(L, "%s: %s %d is a %s, expected a tensor", fname, what, i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return ts;
}

static int l_clip_grad_norm(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const double max_norm = luaL_checknumber(L, 2);
  const double norm_type = luaL_optnumber(L, 3, 2.0);
  const int n = (int)lua_rawlen(L, 1);
  ser_tensor **ps = check_tensor_list(L, 1, "clip_grad_norm", "parameter");
  double norm;
  if (ser_clip_grad_norm(&norm, ps, n, max_norm, norm_type)) return ser_lua_fail(L, "clip_grad_norm");
  lua_pushnumber(L, norm);
  return 1;
}

/* The flat gradient block of data-parallel training (ser.dist): a contiguous float tensor. */
static float *check_flat(lua_State *L, int idx, const char *fname, size_t *len) {
  ser_tensor *b = ser_lua_checktensor(L, idx);
  if (!ser_tensor_is_contiguous(b)) luaL_error(L, "%s: the buffer must be a contiguous tensor", fname);
  *len = (size_t)ser_tensor_numel(b);
  return ser_tensor_data(b);
}

static int l_grads_numel(lua_State *L) {
  ser_tensor **ps = check_tensor_list(L, 1, "grads_numel", "parameter");
  lua_pushinteger(L, (lua_Integer)ser_grads_numel(ps, (int)lua_rawlen(L, 1)));
  return 1;
}

static int l_pack_grads(lua_State *L) {
  ser_tensor **ps = check_tensor_list(L, 1, "pack_grads", "parameter");
  size_t len;
  float *buf = check_flat(L, 2, "pack_grads", &len);
  if (ser_grads_pack(buf, len, ps, (int)lua_rawlen(L, 1))) return ser_lua_fail(L, "pack_grads");
  return 0;
}

static int l_unpack_grads(lua_State *L) {
  ser_tensor **ps = check_tensor_list(L, 1, "unpack_grads", "parameter");
  size_t len;
  const float *buf = check_flat(L, 2, "unpack_grads", &len);
  const double scale = luaL_optnumber(L, 3, 1.0);
  if (ser_grads_unpack(ps, (int)lua_rawlen(L, 1), buf, len, scale)) return ser_lua_fail(L, "unpack_grads");
  return 0;
}

static int l_ema_update(lua_State *L) {
  const double decay = luaL_checknumber(L, 3);
  ser_tensor **avg = check_tensor_list(L, 1, "ema_update", "average");
  ser_tensor **src = check_tensor_list(L, 2, "ema_update", "source");
  const int n = (int)lua_rawlen(L, 1);
  if ((int)lua_rawlen(L, 2) != n)
    return luaL_error(L, "ema_update: %d averages but %d sources", n, (int)lua_rawlen(L, 2));
  if (ser_ema_update(avg, src, n, decay)) return ser_lua_fail(L, "ema_update");
  return 0;
}

static int l_onecycle(lua_State *L) {
  const lua_Integer step = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *fn = "OneCycleLR";
  lua_getfield(L, 2, "max_lr");
  lua_getfield(L, 2, "total_steps");
  if (!lua_isnumber(L, -2) || !lua_isinteger(L, -1))
    return luaL_error(L, "%s: needs max_lr (a number) and total_steps (an integer); got max_lr = %s, total_steps = %s",
                      fn, luaL_typename(L, -2), luaL_typename(L, -1));
  ser_onecycle_opts o = ser_onecycle_defaults(lua_tonumber(L, -2), lua_tointeger(L, -1));
  lua_pop(L, 2);
  o.pct_start = ser_lua_optnumber(L, 2, "pct_start", o.pct_start, fn);
  o.div_factor = ser_lua_optnumber(L, 2, "div_factor", o.div_factor, fn);
  o.final_div_factor = ser_lua_optnumber(L, 2, "final_div_factor", o.final_div_factor, fn);
  o.base_momentum = ser_lua_optnumber(L, 2, "base_momentum", o.base_momentum, fn);
  o.max_momentum = ser_lua_optnumber(L, 2, "max_momentum", o.max_momentum, fn);
  double lr, m;
  if (ser_onecycle(&lr, &m, step, &o)) return ser_lua_fail(L, fn);
  lua_pushnumber(L, lr);
  lua_pushnumber(L, m);
  return 2;
}

static int l_cosine(lua_State *L) {
  double lr;
  if (ser_cosine_lr(&lr, luaL_checkinteger(L, 1), luaL_checknumber(L, 2), luaL_checkinteger(L, 3),
                    luaL_optnumber(L, 4, 0.0)))
    return ser_lua_fail(L, "CosineAnnealingLR");
  lua_pushnumber(L, lr);
  return 1;
}

static int l_scalar(lua_State *L) {
  ser_lua_pushtensor(L, ser_tensor_full(0, NULL, (float)luaL_checknumber(L, 1)));
  return 1;
}

int ser_lua_open_optim(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"step", l_step},           {"zero_grad", l_zero_grad}, {"num_groups", l_num_groups},
      {"group", l_group},         {"set_group", l_set_group}, {"params", l_params},
      {"get_state", l_get_state}, {"set_state", l_set_state}, {NULL, NULL},
  };
  static const luaL_Reg fns[] = {
      {"new", l_new},           {"clip_grad_norm", l_clip_grad_norm}, {"ema_update", l_ema_update},
      {"onecycle", l_onecycle}, {"cosine", l_cosine},
      {"scalar", l_scalar},     {"grads_numel", l_grads_numel},
      {"pack_grads", l_pack_grads}, {"unpack_grads", l_unpack_grads}, {NULL, NULL},
  };
  ser_lua_newclass(L, OPTIM_MT, methods, l_gc, NULL);
  luaL_newlib(L, fns);
  return 1;
}
