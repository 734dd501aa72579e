-- whisper_concat_spk.lua inside Whisper's own 30 s window, on the top four blocks: each trimmed
-- clip is zero-padded to 30 s before the log-mel and the encoder attends over the whole window,
-- as Whisper was trained; the head pools the clip's own frames of the top four blocks' outputs
-- (hidden states -4 to -1: whisper-base's 3-6; the embeddings and the first two blocks left out). Speaker-normalised (needs
-- the speaker's other clips at inference). Encoding costs ~20x the clip-length recipe (a 30 s
-- window for every 2-5 s RAVDESS clip), once: the embedding cache keeps every layer, so the
-- layer choice costs nothing more. The layers were chosen on the validation speakers
-- (docs/pretrained.md, "Encoding clips inside Whisper's 30 s window"); on whisper-tiny.en
-- (4 blocks) the same -4..-1 are its blocks 1-4, which score as all five hidden states do (78.9 %).
return {
  name = "whisper_concat_spk_window",
  model = { name = "whisper", encoder = "models/whisper-base", head = "concat", hidden = 512, dropout = 0.5,
            speaker_norm = true, context = 30, layers = { -4, -3, -2, -1 } },
  data = { seconds = 8, trim = 30 },
  batch = 32,
  epochs = 60,
  optim = { lr = 1e-3, weight_decay = 1e-2 },
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
