-- Fine-tuning the top of a Whisper encoder under the attentive head (whisper_attentive.lua):
-- whisper-base's top 2 blocks and final LayerNorm train with their own peak learning rate (5e-5,
-- the head's 1e-3), bf16 GEMMs (amp). The blocks run from hidden state 4 of the frames cache
-- (model.finetune_from = "cache", the default: an epoch costs only the top blocks), with time masks
-- on the cached frames; --set model.finetune_from=logmel runs the whole encoder every step with
-- SpecAugment on the log-mel instead (2 time masks of up to 0.2 s, 2 frequency masks of up to 10
-- bins). Single-clip inference. The checkpoint holds the head and the two fine-tuned blocks; the
-- frozen ones come from the encoder folder, checked by its identity. docs/pretrained.md.
return {
  name = "whisper_finetune",
  model = { name = "whisper", encoder = "models/whisper-base", head = "attentive", attention = 128, hidden = 512,
            dropout = 0.5, finetune_layers = 2, encoder_lr = 5e-5, spec_augment = true },
  data = { seconds = 8, trim = 30 },
  batch = 16,
  epochs = 15,
  amp = true,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 15 },
  seeds = { 1, 2, 3 },
}
