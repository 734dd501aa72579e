"""Reference encoders for wav2vec2_spec.lua: small random wav2vec 2.0 / HuBERT /
WavLM models written as Hugging Face folders, and their hidden states on given
clips, computed in float64 by PyTorch.

wav2vec 2.0 and HuBERT are torchaudio 0.13's own implementation
(torchaudio.models.wav2vec2_model); their state_dict is renamed to Hugging
Face's names by the inverse of torchaudio's import_huggingface_model mapping.
torchaudio 0.13 has no WavLM: its blocks are a re-implementation below, written
from the WavLM paper (Chen et al. 2022, section 2.2, gated relative position
bias) and Hugging Face's modeling_wavlm.py (bucket formula, gate, where the
bias enters the scores), on torchaudio's feature encoder, projection and
positional convolution (which WavLM shares with wav2vec 2.0).

Usage:
  wav2vec2_ref.py make DIR VARIANT CLIPS.safetensors   (VARIANT,VARIANT,...: each into DIR/VARIANT) writes DIR/model.safetensors, config.json,
      (preprocessor_config.json) and DIR/ref.safetensors: "hs.<clip>.<layer>" [T, d] for each clip
      "clip.<i>" of CLIPS (float32 samples at 16 kHz), each run alone, as Hugging Face's
      output_hidden_states (1-based clip and layer numbers)
  wav2vec2_ref.py clips OUT.safetensors                 two generated voiced clips (3 s, 1.9 s), F16
  wav2vec2_ref.py variants                              the variant names
Prints "ok" at the end.
"""
import json
import math
import os
import sys

import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_torch import st_read, st_write  # noqa: E402

NARROW_CONV = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2

# name: family, extractor, pre-LN, conv bias, storage dtype, positional-weight form, prefix,
#       do_normalize (None: no preprocessor_config.json), WavLM buckets / distance, extra tensors
VARIANTS = {
    "w2v_group": dict(family="wav2vec2", mode="group_norm", pre_ln=False, conv_bias=False, dtype="F32",
                      pos="weight_norm", prefix="", normalize=None),
    "hubert_group_f16": dict(family="hubert", mode="group_norm", pre_ln=False, conv_bias=False, dtype="F16",
                             pos="parametrizations", prefix="hubert.", normalize=True),
    "w2v_layer_pre": dict(family="wav2vec2", mode="layer_norm", pre_ln=True, conv_bias=True, dtype="F32",
                          pos="plain", prefix="wav2vec2.", normalize=True),
    "wavlm_group": dict(family="wavlm", mode="group_norm", pre_ln=False, conv_bias=False, dtype="F32",
                        pos="weight_norm", prefix="", normalize=False, buckets=320, distance=800),
    "wavlm_layer_pre": dict(family="wavlm", mode="layer_norm", pre_ln=True, conv_bias=True, dtype="F32",
                            pos="parametrizations", prefix="wavlm.", normalize=True, buckets=64, distance=100,
                            extra=True),
}
D, HEADS, FFN, LAYERS, POS_K, POS_G = 32, 4, 64, 2, 16, 4
# The base models' sizes (wav2vec2-base, hubert-base-ls960, wavlm-base-plus): bench/bench_wav2vec2.sh.
BASE_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
SIZES = {"narrow": (NARROW_CONV, D, HEADS, FFN, LAYERS, POS_K, POS_G),
         "base": (BASE_CONV, 768, 12, 3072, 12, 128, 16)}
VARIANTS["hubert_base"] = dict(family="hubert", mode="group_norm", pre_ln=False, conv_bias=False, dtype="F32",
                               pos="weight_norm", prefix="", normalize=False, size="base")
VARIANTS["wavlm_base"] = dict(family="wavlm", mode="group_norm", pre_ln=False, conv_bias=False, dtype="F32",
                              pos="weight_norm", prefix="", normalize=False, buckets=320, distance=800, size="base")


def bucket(rel, num_buckets, max_distance):
    """WavLM's relative position bucket (float32 arithmetic, as modeling_wavlm.py)."""
    half = num_buckets // 2
    exact = half // 2
    upper = (rel > 0).long() * half
    a = rel.abs()
    large = torch.log(a.float() / exact) / math.log(max_distance / exact) * (half - exact)
    large = torch.clamp((exact + large).long(), max=half - 1)
    return upper + torch.where(a < exact, a, large)


class WavLMBlock(torch.nn.Module):
    """One WavLM transformer block: self-attention whose scores get the relative
    position bias gated per head and query by the block's attention input."""

    def __init__(self, d, heads, ffn, pre_ln, buckets, eps=1e-5):
        super().__init__()
        self.heads, self.pre_ln = heads, pre_ln
        self.q_proj, self.k_proj = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.v_proj, self.out_proj = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.gru_rel_pos_const = torch.nn.Parameter(torch.ones(1, heads, 1, 1))
        self.gru_rel_pos_linear = torch.nn.Linear(d // heads, 8)
        self.rel_attn_embed = torch.nn.Embedding(buckets, heads) if buckets else None
        self.layer_norm = torch.nn.LayerNorm(d, eps=eps)
        self.intermediate_dense, self.output_dense = torch.nn.Linear(d, ffn), torch.nn.Linear(ffn, d)
        self.final_layer_norm = torch.nn.LayerNorm(d, eps=eps)

    def attention(self, x, bias):
        B, T, d = x.shape
        H, Dh = self.heads, d // self.heads

        def split(t):
            return t.view(B, T, H, Dh).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        g = self.gru_rel_pos_linear(split(x)).view(B, H, T, 2, 4).sum(-1)
        a, b = torch.sigmoid(g).unbind(-1)
        gate = a * (b * self.gru_rel_pos_const.view(1, H, 1) - 1.0) + 2.0
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(Dh) + gate.unsqueeze(-1) * bias.unsqueeze(0)
        out = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(B, T, d))

    def ff(self, x):
        return self.output_dense(torch.nn.functional.gelu(self.intermediate_dense(x)))

    def forward(self, x, bias):
        if self.pre_ln:
            x = x + self.attention(self.layer_norm(x), bias)
            return x + self.ff(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x, bias))
        return self.final_layer_norm(x + self.ff(x))


def build(v):
    torch.manual_seed(1234)
    conv, d, heads, ffn, layers, pos_k, pos_g = SIZES[v.get("size", "narrow")]
    if v.get("size") == "base" and v["family"] == "hubert":
        ta = torchaudio.models.hubert_base()  # torchaudio's own factory (dropouts off in eval)
    else:
        ta = torchaudio.models.wav2vec2_model(
            extractor_mode=v["mode"], extractor_conv_layer_config=conv, extractor_conv_bias=v["conv_bias"],
            encoder_embed_dim=d, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=pos_k,
            encoder_pos_conv_groups=pos_g, encoder_num_layers=layers, encoder_num_heads=heads,
            encoder_attention_dropout=0.0, encoder_ff_interm_features=ffn, encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0, encoder_layer_norm_first=v["pre_ln"], encoder_layer_drop=0.0, aux_num_out=None)
    blocks = None
    if v["family"] == "wavlm":
        blocks = torch.nn.ModuleList(
            [WavLMBlock(d, heads, ffn, v["pre_ln"], v["buckets"] if i == 0 else 0) for i in range(layers)])
    # random but not trivial: norms away from 1/0, gates away from their init
    with torch.no_grad():
        for mod in [ta] + ([blocks] if blocks is not None else []):
            for name, p in mod.named_parameters():
                if name.endswith("layer_norm.weight"):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                elif name.endswith("bias") or "gru_rel_pos" in name:
                    p.copy_(0.1 * torch.randn_like(p) + (1.0 if name.endswith("const") else 0.0))
                elif "rel_attn_embed" in name:
                    p.copy_(torch.randn_like(p))
        pc = ta.encoder.transformer.pos_conv_embed.conv
        pc.weight_g.copy_(0.5 + torch.rand_like(pc.weight_g))
    return ta.eval(), blocks


def hf_name(name):
    """torchaudio's state_dict name -> Hugging Face's (inverse of import_huggingface_model's mapping)."""
    for ta, hf in (("encoder.feature_projection.", "feature_projection."),
                   ("encoder.transformer.pos_conv_embed.", "encoder.pos_conv_embed."),
                   ("encoder.transformer.layer_norm.", "encoder.layer_norm."),
                   ("encoder.transformer.layers.", "encoder.layers.")):
        if name.startswith(ta):
            return hf + name[len(ta):]
    return name


def state_dict(v, ta, blocks):
    sd = {}
    for name, t in ta.state_dict().items():
        if blocks is not None and name.startswith("encoder.transformer.layers."):
            continue
        sd[hf_name(name)] = t.clone()
    if blocks is not None:
        for i, blk in enumerate(blocks):
            for name, t in blk.state_dict().items():
                name = {"q_proj": "attention.q_proj", "k_proj": "attention.k_proj", "v_proj": "attention.v_proj",
                        "out_proj": "attention.out_proj", "gru_rel_pos_const": "attention.gru_rel_pos_const",
                        "gru_rel_pos_linear": "attention.gru_rel_pos_linear",
                        "rel_attn_embed": "attention.rel_attn_embed",
                        "intermediate_dense": "feed_forward.intermediate_dense",
                        "output_dense": "feed_forward.output_dense"}.get(name.split(".")[0], name.split(".")[0]) + \
                    name[len(name.split(".")[0]):]
                sd["encoder.layers.%d.%s" % (i, name)] = t.clone()
    g, w = "encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v"
    if v["pos"] == "parametrizations":
        sd["encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = sd.pop(g)
        sd["encoder.pos_conv_embed.conv.parametrizations.weight.original1"] = sd.pop(w)
    elif v["pos"] == "plain":
        gg, vv = sd.pop(g), sd.pop(w)
        sd["encoder.pos_conv_embed.conv.weight"] = torch._weight_norm(vv, gg, 2)
    return sd


def stored(t, dtype):
    return t.to(torch.float16) if dtype == "F16" else t.to(torch.float32)


def config(v):
    conv, d, heads, ffn, layers, pos_k, pos_g = SIZES[v.get("size", "narrow")]
    c = {"model_type": v["family"], "architectures": [{"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel",
                                                        "wavlm": "WavLMModel"}[v["family"]]],
         "conv_dim": [c[0] for c in conv], "conv_kernel": [c[1] for c in conv],
         "conv_stride": [c[2] for c in conv], "conv_bias": v["conv_bias"],
         "feat_extract_norm": "group" if v["mode"] == "group_norm" else "layer", "feat_extract_activation": "gelu",
         "hidden_size": d, "num_attention_heads": heads, "num_hidden_layers": layers, "intermediate_size": ffn,
         "hidden_act": "gelu", "num_conv_pos_embeddings": pos_k, "num_conv_pos_embedding_groups": pos_g,
         "do_stable_layer_norm": v["pre_ln"], "layer_norm_eps": 1e-5}
    if v["family"] == "wavlm":
        c["num_buckets"], c["max_bucket_distance"] = v["buckets"], v["distance"]
    return c


@torch.no_grad()
def hidden_states(v, ta, blocks, wav):
    """Hugging Face's output_hidden_states for one clip [N] (float64)."""
    x = wav.double().view(1, -1)
    if v["normalize"]:
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    feats, _ = ta.feature_extractor(x, None)
    h, _ = ta.encoder._preprocess(feats, None)
    t = ta.encoder.transformer
    h = t._preprocess(h)  # + positional conv; the LayerNorm here for post-LN models
    hs = [h]
    if blocks is None:
        for layer in t.layers:
            h = layer(h, None)
            hs.append(h)
    else:
        T = h.shape[1]
        pos = torch.arange(T)
        table = blocks[0].rel_attn_embed.weight  # [buckets, H]: the first layer's, shared
        bias = table[bucket(pos[None, :] - pos[:, None], v["buckets"], v["distance"])].permute(2, 0, 1)
        for blk in blocks:
            h = blk(h, bias)
            hs.append(h)
    if not t.layer_norm_first:  # pre-LN models: the final LayerNorm is in the last hidden state
        hs[-1] = t.layer_norm(hs[-1])
    return [x[0] for x in hs]


def make(out, name, clips_path):
    v = VARIANTS[name]
    ta, blocks = build(v)
    # the stored values are the model's: round the parameters to the file's dtype first
    with torch.no_grad():
        for mod in [ta] + ([blocks] if blocks is not None else []):
            for p in mod.parameters():
                p.copy_(stored(p, v["dtype"]).float())
    sd = {k: stored(t, v["dtype"]) for k, t in state_dict(v, ta, blocks).items()}
    ta = ta.double()
    if blocks is not None:
        blocks = blocks.double()
    os.makedirs(out, exist_ok=True)
    pre = v["prefix"]
    full = {pre + k: t for k, t in sd.items()}
    if v.get("extra"):  # a *ForSequenceClassification file: heads and masked_spec_embed stay on disk
        full[pre + "masked_spec_embed"] = torch.randn(D).to(torch.float32)
        full["projector.weight"] = torch.randn(8, D)
        full["classifier.weight"] = torch.randn(4, 8)
    st_write(os.path.join(out, "model.safetensors"), full)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(v), f, indent=1)
    if v["normalize"] is not None:
        with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
            json.dump({"do_normalize": v["normalize"], "feature_size": 1, "sampling_rate": 16000,
                       "padding_value": 0.0, "return_attention_mask": v["mode"] == "layer_norm"}, f, indent=1)
    clips, _ = st_read(clips_path)
    ref = {}
    for i in range(1, len(clips) + 1):
        for l, h in enumerate(hidden_states(v, ta, blocks, clips["clip.%d" % i].float())):
            ref["hs.%d.%d" % (i, l + 1)] = h.float()
    st_write(os.path.join(out, "ref.safetensors"), ref)


def make_clips(out):
    clips = {}
    g = torch.Generator().manual_seed(7)
    for i, n in enumerate((48000, 30400), start=1):
        t = torch.arange(n, dtype=torch.float64) / 16000
        f0 = 120 + 30 * i + 25 * torch.sin(2 * math.pi * 3 * t)
        phase = 2 * math.pi * torch.cumsum(f0, 0) / 16000
        s = sum(torch.sin(h * phase) / h for h in range(1, 12))
        s = 0.2 * s * torch.sin(math.pi * t / t[-1]) + 0.003 * torch.randn(n, generator=g, dtype=torch.float64)
        clips["clip.%d" % i] = s.to(torch.float16)
    st_write(out, clips)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "make":
        if "," in sys.argv[3]:  # several variants, each into DIR/<variant>
            for name in sys.argv[3].split(","):
                make(os.path.join(sys.argv[2], name), name, sys.argv[4])
        else:
            make(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "clips":
        make_clips(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "variants":
        print(" ".join(VARIANTS))
    else:
        sys.exit(__doc__)
    print("ok")


if __name__ == "__main__":
    main()
