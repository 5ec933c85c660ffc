"""GPT-J: one norm feeds both attention and MLP (parallel block); attention is computed in-module."""

from .base import Layout

LAYOUT = Layout(
    name="gptj",
    families=("gptj",),
    attn="attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="out_proj",
    norms={"ln1": "ln_1"},
    mlp="mlp",
    down="mlp.fc_out",
    parallel=True,
    attention_interface=False,  # GPTJAttention._attn; its output[1] is always the pattern
)
