-- The attentive head (whisper_attentive.lua) on speaker-normalised frames: each speaker's frames
-- z-scored per layer and channel over all that speaker's frames in its split (no labels). Needs
-- the speaker's other clips at inference (predict.lua groups files by the speaker in their names).
return {
  name = "whisper_attentive_spk",
  model = { name = "whisper", encoder = "models/whisper-base", head = "attentive", attention = 128, hidden = 512,
            dropout = 0.5, speaker_norm = true },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 20,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 20 },
  seeds = { 1, 2, 3 },
}
