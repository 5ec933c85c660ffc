"""Phi-3: Llama-shaped, with fused ``qkv_proj`` ([q | k | v]) and fused ``gate_up_proj``."""

from .base import Layout

LAYOUT = Layout(
    name="phi3",
    families=("phi3",),
    attn="self_attn",
    qkv=("qkv_proj",),
    qkv_kind="concat",
    o_proj="o_proj",
    norms={"ln1": "input_layernorm", "ln2": "post_attention_layernorm"},
    mlp="mlp",
    down="mlp.down_proj",
)
