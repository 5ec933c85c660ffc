"""Phi-1/1.5/2: one LayerNorm feeds both attention and MLP (parallel block), output proj ``dense``."""

from .base import Layout

LAYOUT = Layout(
    name="phi",
    families=("phi",),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="dense",
    norms={"ln1": "input_layernorm"},
    mlp="mlp",
    down="mlp.fc2",
    parallel=True,
)
