"""OLMo 2: no pre-norms; norms applied to the attention and MLP outputs before the residual add."""

from .base import Layout

LAYOUT = Layout(
    name="olmo2",
    families=("olmo2", "olmo3"),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="o_proj",
    norms={"attn_post": "post_attention_layernorm", "mlp_post": "post_feedforward_layernorm"},
    mlp="mlp",
    down="mlp.down_proj",
)
