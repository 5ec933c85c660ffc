"""OPT: the MLP linears ``fc1``/``fc2`` sit on the block itself; pre-LN (``do_layer_norm_before``)."""

from .base import Layout

LAYOUT = Layout(
    name="opt",
    families=("opt",),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="out_proj",
    norms={"ln1": "self_attn_layer_norm", "ln2": "final_layer_norm"},
    mlp=None,
    mlp_out="fc2",
    down="fc2",
    extra={"flat_mlp": True},  # the MLP sees [batch * pos, d_model]
)
