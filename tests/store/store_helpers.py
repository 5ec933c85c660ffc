from __future__ import annotations

import torch
import transformers as T

import shoestring

VOCAB, T_CTX = 100, 16


def tiny_lm(seed: int = 0, layers: int = 3):
    torch.manual_seed(seed)
    cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=64, bos_token_id=0, eos_token_id=1)
    return shoestring.LM(T.AutoModelForCausalLM.from_config(cfg), None, name=f"tiny-{seed}", check=False)


def random_batches(n_batches: int = 50, batch: int = 4, seed: int = 0, skip: int = 0):
    """Deterministic packed contexts with BOS (id 0) first; ``skip`` drops the first contexts."""
    g = torch.Generator().manual_seed(seed)
    seen = 0
    for i in range(n_batches):
        tok = torch.randint(2, VOCAB, (batch, T_CTX), generator=g)
        tok[:, 0] = 0
        docs = torch.full((batch, T_CTX), i)
        pos = torch.arange(T_CTX).expand(batch, T_CTX)
        if seen + batch <= skip:
            seen += batch
            continue
        cut = max(0, skip - seen)
        seen += batch
        yield tok[cut:], docs[cut:], pos[cut:]
