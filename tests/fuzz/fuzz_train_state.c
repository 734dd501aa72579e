/* libFuzzer target: the training-state reader of resumable training (ser.train.state =
 * lua/ser/train/state.lua: read checks a state file's metadata and tensors, apply puts them
 * into a model, AdamW, OneCycle and an EMA), on damaged files.
 *
 * Setup writes one valid state of a small model (Linear, BatchNorm1d, Linear) for a fixed
 * run identity. Each input then becomes a file in one of three ways (first byte % 3):
 *   0: byte patches on the valid file — (offset u16, value) pairs, then a truncation length
 *      (u16, 0 = none) — so the identity mostly survives and the field checks are reached;
 *   1: the input as the whole JSON header, in front of the valid file's tensor bytes;
 *   2: the input as the whole file.
 * read may only fail with its own message ("ser.train.fit: the training state ..."), and
 * apply only with the checks of the objects it loads into; a Lua runtime error ("attempt
 * to ...", "bad argument ...") in either is a bug, and so is any sanitizer report. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>

#include "lua_harness.h"

static const char setup[] =
    "local ser = require 'ser'\n"
    "local state = require 'ser.train.state'\n"
    "local T, nn = ser.tensor, ser.nn\n"
    "fuzz_dir = assert(os.getenv('SER_FUZZ_DIR'))\n"
    "local function build()\n"
    "  ser.manual_seed(1)\n"
    "  local model = nn.Sequential{ nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2) }\n"
    "  local opt = ser.optim.AdamW(model:parameters(), { lr = 1e-3 })\n"
    "  local sched = ser.optim.OneCycleLR(opt, { max_lr = 1e-3, total_steps = 10 })\n"
    "  return model, opt, sched, ser.optim.EMA(model, { decay = 0.9 })\n"
    "end\n"
    "local model, opt, sched, ema = build()\n"
    "for _, p in ipairs(model:parameters()) do p:set_grad(T.ones(table.unpack(p:shape()))) end\n"
    "opt:step(); sched:step(); ema:update()\n"
    "local identity = state.identity({ seed = 1 }, model, {}, 1)\n"
    "local best = {}\n"
    "for k, t in pairs(model:state_dict()) do best[k] = t:clone() end\n"
    "local path = fuzz_dir .. '/state.safetensors'\n"
    "state.write(path, { identity = identity, epoch = 2, model = model, opt = opt, sched = sched, ema = ema,\n"
    "  best = { f1 = 0.5, epoch = 1, state = best }, since_best = 1, rng = { ser.get_rng_state() },\n"
    "  history = { { epoch = 1, train_loss = 1.25, val_f1 = 0.5 }, { epoch = 2, train_loss = 0.5, val_loss = 0 / 0 } },\n"
    "  seconds = { train = 1.5, cpu = 2 }, checkpoint = 'best.safetensors' })\n"
    "local fh = assert(io.open(path, 'rb')); local good = fh:read('a'); fh:close()\n"
    "local hlen = string.unpack('<I8', good)\n"
    "local body = good:sub(9 + hlen)\n"
    "local function foreign(msg)\n"
    "  msg = tostring(msg)\n"
    "  return msg:find('attempt to ', 1, true) or msg:find('bad argument', 1, true) or msg:find('stack overflow', 1, true)\n"
    "end\n"
    "function fuzz_one(s, sel)\n"
    "  local bytes\n"
    "  if sel % 3 == 0 then\n"
    "    local b, n = { good:byte(1, -1) }, #good\n"
    "    local i = 1\n"
    "    while i + 2 <= #s do\n"
    "      local off = string.unpack('<I2', s, i) % n + 1\n"
    "      b[off] = s:byte(i + 2)\n"
    "      i = i + 3\n"
    "    end\n"
    "    local cut = i + 1 <= #s and string.unpack('<I2', s, i) or 0\n"
    "    local parts = {}\n"
    "    for k = 1, n, 4096 do parts[#parts + 1] = string.char(table.unpack(b, k, math.min(n, k + 4095))) end\n"
    "    bytes = table.concat(parts)\n"
    "    if cut > 0 then bytes = bytes:sub(1, cut % n) end\n"
    "  elseif sel % 3 == 1 then\n"
    "    bytes = string.pack('<I8', #s) .. s .. body\n"
    "  else\n"
    "    bytes = s\n"
    "  end\n"
    "  local p = fuzz_dir .. '/in.safetensors'\n"
    "  local f = assert(io.open(p, 'wb')); f:write(bytes); f:close()\n"
    "  local ok, r = pcall(state.read, p, identity)\n"
    "  if not ok then\n"
    "    if tostring(r):find('^ser%.train%.fit: the training state') and not foreign(r) then return nil end\n"
    "    return 'read raised a foreign error: ' .. tostring(r)\n"
    "  end\n"
    "  if type(r) ~= 'table' then return 'read returned ' .. type(r) .. ' for an existing file' end\n"
    "  local m2, o2, s2, e2 = build()\n"
    "  local ok2, err = pcall(state.apply, r, { model = m2, opt = o2, sched = s2, ema = e2, rank = 0 })\n"
    "  if not ok2 and foreign(err) then return 'apply raised a foreign error: ' .. tostring(err) end\n"
    "  return nil\n"
    "end\n";

static char dir[] = "/tmp/ser-fuzz-train-state-XXXXXX";

static void cleanup(void) {
  char p[256];
  const char *rel[] = {"state.safetensors", "in.safetensors", NULL};
  for (int i = 0; rel[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, rel[i]);
    remove(p);
  }
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (!mkdtemp(dir)) abort();
  setenv("SER_FUZZ_DIR", dir, 1);
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lua_State *L = fuzz_lua_state(setup);
  fuzz_lua_run(L, "fuzz_train_state", data + 1, size - 1, data[0]);
  return 0;
}
