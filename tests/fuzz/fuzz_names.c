/* libFuzzer target: the corpus name parser (ser.data.infer = lua/ser/data/names.lua)
 * on arbitrary paths. It must never raise: it returns a table with a string label
 * (and a number or string speaker, when present) or nil and a reason string.
 * Every parser is also called on its own, since infer stops at the first match. */
#include <stddef.h>
#include <stdint.h>

#include "lua_harness.h"

static const char setup[] =
    "local names = require 'ser.data.names'\n"
    "local function check(where, info, reason)\n"
    "  if info == nil then\n"
    "    if reason ~= nil and type(reason) ~= 'string' then return where .. ': reason is a ' .. type(reason) end\n"
    "    return nil\n"
    "  end\n"
    "  if type(info) ~= 'table' then return where .. ': returned a ' .. type(info) end\n"
    "  if type(info.label) ~= 'string' or info.label == '' then return where .. ': label is ' .. tostring(info.label) end\n"
    "  local st = type(info.speaker)\n"
    "  if st ~= 'nil' and st ~= 'number' and st ~= 'string' then return where .. ': speaker is a ' .. st end\n"
    "  if st == 'number' and info.speaker ~= info.speaker then return where .. ': speaker is NaN' end\n"
    "  return nil\n"
    "end\n"
    "function fuzz_one(s, sel)\n"
    "  local mode = sel % 2 == 1 and 'folder' or nil\n"
    "  local ok, info, reason = pcall(names.infer, s, { label_from = mode })\n"
    "  if not ok then return 'infer raised: ' .. tostring(info) end\n"
    "  local bad = check('infer', info, reason)\n"
    "  if bad then return bad end\n"
    "  local stem, ext, parent = names.split_path(s)\n"
    "  if type(stem) ~= 'string' or type(ext) ~= 'string' then return 'split_path: bad result' end\n"
    "  for _, p in ipairs{ 'ravdess', 'crema', 'tess', 'savee', 'emodb' } do\n"
    "    local ok2, i2, r2 = pcall(names[p], stem, parent)\n"
    "    if not ok2 then return p .. ' raised: ' .. tostring(i2) end\n"
    "    bad = check(p, i2, r2)\n"
    "    if bad then return bad end\n"
    "  end\n"
    "  local ok3, c = pcall(names.canonical_label, s)\n"
    "  if not ok3 then return 'canonical_label raised: ' .. tostring(c) end\n"
    "  return nil\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lua_State *L = fuzz_lua_state(setup);
  fuzz_lua_run(L, "fuzz_names", data + 1, size - 1, data[0]);
  return 0;
}
