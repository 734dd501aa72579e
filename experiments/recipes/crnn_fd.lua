-- The CRNN recipe plus dropout 0.2 on the BiLSTM's input (README: 68.1 ± 1.0 %); with
-- --set model.hidden=256 (written to its own --out) the 256-unit row (68.5 ± 0.2 %). These
-- six checkpoints (two widths x seeds 1-3) are the teachers of crnn_distilled.lua.
return {
  name = "crnn",
  model = { name = "crnn", freq = "flatten", hidden = 128, time = "stats", dropout = 0.3, feature_dropout = 0.2 },
  features = { kind = "logmel", n_mels = 64 },
  augment = "speed",
  ema = 0.999,
  epochs = 60,
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
