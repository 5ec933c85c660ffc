"""Gemma 2 and Gemma 3 (text): "sandwich" norms around both attention and MLP.

``hook_attn_out`` / ``hook_mlp_out`` are what is added to the residual stream, i.e. the outputs of
``post_attention_layernorm`` / ``post_feedforward_layernorm``. The per-head contributions therefore sum
to the output projection (before that norm), not to ``hook_attn_out``.
"""

from .base import Layout

LAYOUT = Layout(
    name="gemma2",
    families=("gemma2", "gemma3_text", "gemma3"),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="o_proj",
    norms={
        "ln1": "input_layernorm",
        "attn_post": "post_attention_layernorm",
        "ln2": "pre_feedforward_layernorm",
        "mlp_post": "post_feedforward_layernorm",
    },
    mlp="mlp",
    down="mlp.down_proj",
)
