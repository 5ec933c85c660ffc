"""GPT-2: fused ``c_attn`` ([q | k | v], Conv1D), learned positions, pre-LN, sequential."""

from .base import Layout

LAYOUT = Layout(
    name="gpt2",
    families=("gpt2",),
    attn="attn",
    qkv=("c_attn",),
    qkv_kind="concat",
    o_proj="c_proj",
    norms={"ln1": "ln_1", "ln2": "ln_2"},
    mlp="mlp",
    down="mlp.c_proj",
)
