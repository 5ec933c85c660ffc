"""Llama and the many families that copy it: pre-RMSNorm, separate q/k/v, gated MLP.

SmolLM2, TinyLlama, Mistral, Qwen2, Qwen3 (q/k norms live inside attention), Gemma (scaled
embeddings live in the embedding module) all have this block.
"""

from .base import Layout

LAYOUT = Layout(
    name="llama",
    families=("llama", "mistral", "qwen2", "qwen3", "gemma", "granite", "cohere", "helium", "olmo"),
    attn="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"),
    o_proj="o_proj",
    norms={"ln1": "input_layernorm", "ln2": "post_attention_layernorm"},
    mlp="mlp",
    down="mlp.down_proj",
)
