"""Tiny random models of every supported family, and helpers shared by the tests (offline).

No test may touch the network: the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

import shoestring  # noqa: E402

torch.set_num_threads(2)

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS = 100, 32, 2, 4, 2
IDS = dict(bos_token_id=0, eos_token_id=1)
BASE = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, **IDS)
GQA = dict(BASE, num_key_value_heads=KV_HEADS, intermediate_size=64)

# family -> (config factory, expected layout name, expected parallel block)
FAMILIES = {
    "gpt2": (lambda: T.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=64, **IDS),
             "gpt2", False),
    "gpt_neox_parallel": (lambda: T.GPTNeoXConfig(**BASE, intermediate_size=64, max_position_embeddings=64,
                                                  use_parallel_residual=True), "gpt_neox", True),
    "gpt_neox_sequential": (lambda: T.GPTNeoXConfig(**BASE, intermediate_size=64, max_position_embeddings=64,
                                                    use_parallel_residual=False), "gpt_neox", False),
    "gptj": (lambda: T.GPTJConfig(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, rotary_dim=4,
                                  n_positions=64, **IDS), "gptj", True),
    "opt": (lambda: T.OPTConfig(**BASE, ffn_dim=64, word_embed_proj_dim=HIDDEN, max_position_embeddings=64,
                                pad_token_id=1), "opt", False),
    "llama": (lambda: T.LlamaConfig(**GQA), "llama", False),
    "mistral": (lambda: T.MistralConfig(**GQA), "llama", False),
    "mixtral": (lambda: T.MixtralConfig(**GQA, num_local_experts=4, num_experts_per_tok=2), "mixtral", False),
    "qwen2": (lambda: T.Qwen2Config(**GQA), "llama", False),
    "qwen3": (lambda: T.Qwen3Config(**GQA, head_dim=8), "llama", False),
    "gemma": (lambda: T.GemmaConfig(**GQA, head_dim=8, pad_token_id=0), "llama", False),
    "gemma2": (lambda: T.Gemma2Config(**GQA, head_dim=8, pad_token_id=0), "gemma2", False),
    "gemma3_text": (lambda: T.Gemma3TextConfig(**GQA, head_dim=8, pad_token_id=0), "gemma2", False),
    "phi3": (lambda: T.Phi3Config(**GQA, pad_token_id=0), "phi3", False),
    "olmo2": (lambda: T.Olmo2Config(**GQA, pad_token_id=0), "olmo2", False),
    "phi": (lambda: T.PhiConfig(**GQA), "phi", True),
}


def supports_sdpa(family: str) -> bool:
    cls = T.AutoModelForCausalLM._model_mapping[type(FAMILIES[family][0]())]
    return bool(getattr(cls, "_supports_sdpa", False))


def family_impls():
    """Every (family, attn implementation) pair transformers supports (eager always; sdpa where offered)."""
    out = []
    for fam in FAMILIES:
        if supports_sdpa(fam):
            out.append(pytest.param(fam, "sdpa", id=f"{fam}-sdpa"))
        out.append(pytest.param(fam, "eager", id=f"{fam}-eager"))
    return out


def make_model(family: str, impl: str = "sdpa", seed: int = 0, **overrides):
    """A tiny random model of ``family``; an unsupported sdpa falls back to eager (the ValueError is caught)."""
    cfg = FAMILIES[family][0]()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation=impl)
    except ValueError:
        if impl != "sdpa":
            raise
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    return model.eval()


def make_lm(family: str, impl: str = "sdpa", seed: int = 0, **overrides) -> shoestring.LM:
    return shoestring.LM(make_model(family, impl, seed, **overrides), None, name=family, check=False)


def random_ids(batch: int = 2, pos: int = 7, seed: int = 1) -> torch.Tensor:
    # avoid 0/1 (bos/eos) so nothing special happens to them
    return torch.randint(2, VOCAB, (batch, pos), generator=torch.Generator().manual_seed(seed))


def no_hooks_left(model) -> list[str]:
    """Names of modules that still carry any forward hook or pre-hook."""
    dirty = []
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks:
            dirty.append(name or "<root>")
    return dirty


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tiny_tokenizer():
    """A word-level fast tokenizer over the tiny vocab: '<bos>', '<eos>', then 'w2' ... 'w99'. Built in memory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<bos>": 0, "<eos>": 1, **{f"w{i}": i for i in range(2, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w2"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="w2")


