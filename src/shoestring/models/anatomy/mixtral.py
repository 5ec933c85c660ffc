"""Mixtral and Qwen-MoE style blocks: Llama attention, a sparse mixture of experts as the MLP.

The experts' weights are fused 3-D tensors in transformers 5, so there is no single neuron site:
``mlp.hook_post`` is not offered; ``hook_mlp_out`` is the routed sum.
"""

from .base import Layout

LAYOUT = Layout(
    name="mixtral",
    families=("mixtral", "qwen2_moe", "qwen3_moe", "olmoe"),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="o_proj",
    norms={"ln1": "input_layernorm", "ln2": "post_attention_layernorm"},
    mlp="mlp",
    down=None,
    moe=True,
    requires=("mlp.experts", "mlp.gate"),
)
