-- CNN2D on 64 log-mels with the notebook's training, which the main job ran by default until
-- 2026-12 (README: "the notebook's pipeline"). Every field not written here has ser.recipe's
-- default: 35 epochs, batch 8, AdamW with OneCycleLR (peak 1e-3, weight decay 1e-4), label
-- smoothing 0.1, the reference augmentation, 4 s clips normalised per clip, early stopping with
-- patience 10, seed 42.
return {
  model = { name = "cnn2d", freq = "flatten" },
  features = { kind = "logmel", n_mels = 64 },
}
