-- The attentive head with every layer kept apart (whisper_attentive.lua's frames and scorer):
-- frames scored on the softmax-weighted layers, then each of whisper-base's 7 hidden states pooled
-- with those attention weights, their means and stds concatenated (7 x 1024) -> MLP (512 units,
-- dropout 0.5). The pooled-statistics analogue is whisper_concat.lua. Single-clip inference.
return {
  name = "whisper_attentive_concat",
  model = { name = "whisper", encoder = "models/whisper-base", head = "attentive_concat", attention = 128,
            hidden = 512, dropout = 0.5 },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 20,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 20 },
  seeds = { 1, 2, 3 },
}
