-- CRNN on 64 log-mels with the notebook's training, which the main job ran by default until
-- 2026-12: the notebook's CRNN with the frequency axis kept (freq = "flatten": the BiLSTM reads
-- 128 channels x 8 bands per step); ser.recipe's defaults otherwise (cnn2d_notebook.lua).
return {
  model = { name = "crnn", freq = "flatten", hidden = 128, time = "mean" },
  features = { kind = "logmel", n_mels = 64 },
}
