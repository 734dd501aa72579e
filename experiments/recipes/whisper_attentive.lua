-- A frame-level head on a frozen Whisper encoder: whisper-base's hidden states kept frame by frame
-- (every layer, float16 in the embedding cache), softmax layer weights -> attentive statistics
-- pooling over the clip's frames (Okabe et al. 2018; 128 scorer units) -> MLP (512 units,
-- LayerNorm, ReLU, dropout 0.5). Single-clip inference: no speaker statistics.
-- Needs the encoder's weights: `make whisper-base` (or --encoder DIR). docs/pretrained.md.
return {
  name = "whisper_attentive",
  model = { name = "whisper", encoder = "models/whisper-base", head = "attentive", attention = 128, hidden = 512,
            dropout = 0.5 },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 20,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 20 },
  seeds = { 1, 2, 3 },
}
