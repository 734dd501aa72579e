-- The SUPERB recipe on a frozen Whisper encoder: learned softmax weights over the L + 1 hidden
-- states -> mean over each clip's frames (cached pooled means) -> linear. whisper-base; clips trimmed of
-- silence (30 dB), up to 8 s.
return {
  name = "whisper_superb",
  model = { name = "whisper", encoder = "models/whisper-base", head = "superb" },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
