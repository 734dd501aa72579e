-- CRNN on 64 log-mels, as the plain main job trains it: the notebook's CRNN with the
-- frequency axis kept (freq = "flatten": the BiLSTM reads 128 channels x 8 bands per step).
return {
  model = { name = "crnn", freq = "flatten", hidden = 128, time = "mean" },
  features = { kind = "logmel", n_mels = 64 },
}
