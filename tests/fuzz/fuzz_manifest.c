/* libFuzzer target: the CSV manifest reader (ser.data.manifest =
 * lua/ser/data/manifest.lua) on arbitrary file contents.
 *
 * The input is written as m.csv into a private temporary folder (relative paths in
 * the manifest resolve there; the folder also holds a.wav and sub/b.wav so that
 * some rows name files that exist and produce a corpus). The reader may only fail
 * with its own messages ("manifest ..."); any other Lua error (indexing nil,
 * a bad argument to a library function) or a corpus with inconsistent fields is a
 * bug. The parser is also fuzzed directly (M.parse_csv on the raw text). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>

#include "lua_harness.h"

static const char setup[] =
    "local manifest = require 'ser.data.manifest'\n"
    "local data = require 'ser.data'\n"
    "data.set_warn(function() end)\n"
    "fuzz_dir = assert(os.getenv('SER_FUZZ_DIR'))\n"
    "local function own(msg) return type(msg) == 'string' and msg:find('^manifest') ~= nil end\n"
    "function fuzz_one(s, sel)\n"
    "  local ok, recs = pcall(manifest.parse_csv, s, 'x.csv')\n"
    "  if not ok and not own(recs) then return 'parse_csv raised a foreign error: ' .. tostring(recs) end\n"
    "  if ok then\n"
    "    for _, r in ipairs(recs) do\n"
    "      if type(r.line) ~= 'number' or type(r.fields) ~= 'table' then return 'parse_csv: malformed record' end\n"
    "      for _, f in ipairs(r.fields) do if type(f) ~= 'string' then return 'parse_csv: non-string field' end end\n"
    "    end\n"
    "  end\n"
    "  local path = fuzz_dir .. '/m.csv'\n"
    "  local fh = assert(io.open(path, 'wb')); fh:write(s); fh:close()\n"
    "  local ok2, c = pcall(manifest.manifest, path, { quiet = sel % 2 == 1 })\n"
    "  if not ok2 then\n"
    "    if own(c) then return nil end\n"
    "    return 'manifest raised a foreign error: ' .. tostring(c)\n"
    "  end\n"
    "  if type(c) ~= 'table' or type(c.items) ~= 'table' or #c.items == 0 then return 'manifest: no items in a returned corpus' end\n"
    "  for _, it in ipairs(c.items) do\n"
    "    if type(it.path) ~= 'string' or type(it.label) ~= 'string' then return 'manifest: item without path/label' end\n"
    "    if c.classes[it.y] ~= it.label then return 'manifest: item.y does not index its label' end\n"
    "  end\n"
    "  local ok3, msg = pcall(function() return c:summary() end)\n"
    "  if not ok3 then return 'corpus:summary raised: ' .. tostring(msg) end\n"
    "  return nil\n"
    "end\n";

static char dir[] = "/tmp/ser-fuzz-manifest-XXXXXX";

static void touch(const char *rel) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "wb");
  if (!f) abort();
  fputs("RIFF", f);
  fclose(f);
}

static void cleanup(void) {
  char p[256];
  const char *rel[] = {"m.csv", "a.wav", "sub/b.wav", "sub", NULL};
  for (int i = 0; rel[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, rel[i]);
    remove(p);
  }
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (!mkdtemp(dir)) abort();
  char sub[256];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  mkdir(sub, 0755);
  touch("a.wav");
  touch("sub/b.wav");
  setenv("SER_FUZZ_DIR", dir, 1);
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lua_State *L = fuzz_lua_state(setup);
  fuzz_lua_run(L, "fuzz_manifest", data + 1, size - 1, data[0]);
  return 0;
}
