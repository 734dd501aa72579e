-- Every layer's pooled mean and std of a frozen Whisper encoder, concatenated ((L + 1) x 2d
-- inputs, no layer weighting) -> MLP (512 units, LayerNorm, ReLU, dropout 0.5). whisper-base;
-- clips trimmed of silence (30 dB), up to 8 s. Single-clip inference: no speaker statistics.
return {
  name = "whisper_concat",
  model = { name = "whisper", encoder = "models/whisper-base", head = "concat", hidden = 512, dropout = 0.5 },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
