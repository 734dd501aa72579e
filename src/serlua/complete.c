#include "complete.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/readline.h>

#include "repl.h"

static lua_State *state;
static char **candidates;
static size_t ncandidates, next_candidate;

static void drop_candidates(void) {
  for (size_t i = next_candidate; i < ncandidates; i++) free(candidates[i]);
  free(candidates);
  candidates = NULL;
  ncandidates = next_candidate = 0;
}

/* Asks repl.complete(word) for the candidates; any error means "no candidates" (a
 * Tab press must never disturb the session). */
static int complete_protected(lua_State *L) {
  const char *word = lua_touserdata(L, 1);
  if (serlua_repl_helper(L, "complete") != LUA_TFUNCTION) return 0;
  lua_pushstring(L, word);
  lua_pushglobaltable(L);
  lua_call(L, 2, 1);
  if (!lua_istable(L, -1)) return 0;
  lua_Integer n = luaL_len(L, -1);
  candidates = calloc((size_t)n + 1, sizeof *candidates);
  if (!candidates) return 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *s = lua_tostring(L, -1);
    if (s && (candidates[ncandidates] = strdup(s)) != NULL) ncandidates++;
    lua_pop(L, 1);
  }
  return 0;
}

/* readline takes ownership of each returned string. */
static char *generator(const char *text, int state_) {
  (void)text;
  (void)state_;
  if (next_candidate < ncandidates) return candidates[next_candidate++];
  drop_candidates();
  return NULL;
}

static char **attempt(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1;   /* never fall back to file names */
  rl_completion_append_character = '\0';
  drop_candidates();
  int top = lua_gettop(state);
  lua_pushcfunction(state, complete_protected);
  lua_pushlightuserdata(state, (void *)text);
  lua_pcall(state, 1, 0, 0);
  lua_settop(state, top);
  return rl_completion_matches(text, generator);
}

void serlua_complete_init(lua_State *L) {
  state = L;
  rl_attempted_completion_function = attempt;
  /* '.' and ':' are part of a word, so "ser.te" is completed as one path. */
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";
}
