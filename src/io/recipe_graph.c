/* The recipe against the graph description (recipe_graph.h). */
#include "recipe_graph.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "core/error.h"

static const char *const FIX = "the graph description was written by another build; write it again from the recipe "
                               "with ser.graph.attach (docs/graph.md)";

static int compare(const cJSON *model, const cJSON *input) {
  const cJSON *features = cJSON_GetObjectItemCaseSensitive(input, "features");
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(features, "kind");
  if (!cJSON_IsObject(model) || !cJSON_IsString(kind) || strcmp(kind->valuestring, "whisper_logmel")) return 0;
  const cJSON *rc_ctx = cJSON_GetObjectItemCaseSensitive(model, "context");
  const cJSON *g_ctx = cJSON_GetObjectItemCaseSensitive(input, "context");
  const double want = cJSON_IsNumber(rc_ctx) ? rc_ctx->valuedouble : 0, have = cJSON_IsNumber(g_ctx) ? g_ctx->valuedouble : 0;
  if (want != have)
    return ser_error(SER_EFORMAT, "the recipe's model.context (%g s) and the graph's input.context (%g s) disagree: %s",
                     want, have, FIX);
  const cJSON *rc_spk = cJSON_GetObjectItemCaseSensitive(model, "speaker_norm");
  const int want_spk = cJSON_IsTrue(rc_spk), have_spk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "speaker_norm"));
  if (cJSON_IsBool(rc_spk) && want_spk != have_spk)
    return ser_error(SER_EFORMAT, "the recipe's model.speaker_norm (%s) and the graph's input.speaker_norm (%s) disagree: %s",
                     want_spk ? "true" : "false", have_spk ? "true" : "false", FIX);
  return 0;
}

int ser_recipe_graph_check(const char *recipe_json, const char *graph_json) {
  if (!recipe_json || !graph_json) return 0;
  cJSON *recipe = cJSON_Parse(recipe_json), *graph = cJSON_Parse(graph_json);
  /* an unreadable graph is its reader's to report, with its own message */
  int rc = compare(cJSON_GetObjectItemCaseSensitive(recipe, "model"), cJSON_GetObjectItemCaseSensitive(graph, "input"));
  cJSON_Delete(recipe);
  cJSON_Delete(graph);
  return rc;
}
