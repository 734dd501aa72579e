/* A serlua checkpoint records the recipe its Lua side rebuilds the model from (metadata key
 * "recipe") beside the graph description that the C inference API and the ONNX export run
 * ("graph"). serlua writes both from one model, so they agree; a checkpoint whose graph came
 * from another build could say otherwise, and the two routes would then predict differently
 * without a word. */
#ifndef SER_IO_RECIPE_GRAPH_H
#define SER_IO_RECIPE_GRAPH_H

/* 0 when the recipe (JSON text, or NULL: none recorded) and the graph description (JSON text)
 * agree on what the graph's input carries for the whisper family -- the Whisper window
 * (model.context against input.context) and speaker normalisation (model.speaker_norm against
 * input.speaker_norm) -- or there is nothing to compare; SER_EFORMAT otherwise, with a message
 * saying to write the graph again with ser.graph.attach. */
int ser_recipe_graph_check(const char *recipe_json, const char *graph_json);

#endif
