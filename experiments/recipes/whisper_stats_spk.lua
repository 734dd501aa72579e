-- The stronger head (whisper.lua: softmax layer weights -> mean+std -> MLP) on speaker-normalised
-- features: each speaker's pooled features z-scored over that speaker's clips in its split (no
-- labels). Needs the speaker's other clips at inference (predict.lua groups files by speaker).
return {
  name = "whisper_stats_spk",
  model = { name = "whisper", encoder = "models/whisper-base", head = "stats", hidden = 512, dropout = 0.5,
            speaker_norm = true },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
