-- A head on a frozen Whisper encoder (the main job's fourth row): whisper-base's hidden states,
-- every layer mean+std pooled over each clip with its leading and trailing silence trimmed
-- (30 dB below its loudest frame; up to 8 s; cached on disk), softmax layer
-- weights -> MLP (512 units, LayerNorm, ReLU, dropout 0.5). Single-clip inference: no speaker statistics.
-- Needs the encoder's weights: `make whisper-base` (or --encoder DIR). docs/pretrained.md.
return {
  model = { name = "whisper", encoder = "models/whisper-base", head = "stats", hidden = 512, dropout = 0.5 },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
}
