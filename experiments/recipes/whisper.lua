-- A head on a frozen Whisper encoder (the main job's fourth row): whisper-base's hidden states,
-- every layer's mean and std over each clip concatenated ((L + 1) x 2d inputs, no layer
-- weighting) -> MLP (512 units, LayerNorm, ReLU, dropout 0.5); clips trimmed of their leading
-- and trailing silence (30 dB below the loudest frame), up to 8 s, encoded once into the
-- embedding cache. Single-clip inference: no speaker statistics. The best head measured for
-- single clips (whisper_concat.lua, the same over seeds 1-3: 73.1 ± 0.9 %; the learned layer
-- weights of head = "stats" gave 71.4 ± 0.6 %). Needs the encoder's weights: `make
-- whisper-base` (or --encoder DIR). docs/pretrained.md.
return {
  model = { name = "whisper", encoder = "models/whisper-base", head = "concat", hidden = 512, dropout = 0.5 },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
}
