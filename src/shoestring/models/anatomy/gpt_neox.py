"""GPT-NeoX / Pythia: fused ``query_key_value`` interleaved per head, parallel residual by config."""

from .base import Layout

LAYOUT = Layout(
    name="gpt_neox",
    families=("gpt_neox",),
    attn="attention",
    qkv=("query_key_value",),
    qkv_kind="interleaved",
    o_proj="dense",
    norms={"ln1": "input_layernorm", "ln2": "post_attention_layernorm"},
    mlp="mlp",
    down="mlp.dense_4h_to_h",
    # Pythia: x + attn(ln1(x)) + mlp(ln2(x)); with use_parallel_residual=False it is sequential.
    parallel=lambda config: bool(getattr(config, "use_parallel_residual", True)),
)
