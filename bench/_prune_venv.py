"""Build (once) and locate the venv of Torch-Pruning, the anchor of ``bench/prune.py``: ``bench/.cache/prune-venv``.

Torch-Pruning 1.6.1 (what pip picks; it declares only ``torch>=2.0`` and ``numpy``) goes in beside the project's
own pins, ``torch==2.13.0`` (the local CPU wheel) and ``transformers==5.23.0``, held by a constraints file, and the
project itself (``pip install -e .``), so the anchor side loads SmolLM2 with the same ``shoestring.load()`` and is
measured by the same ``perplexity`` / ``measure_speed`` code as ours. The project's ``.venv`` is never touched.

    python bench/_prune_venv.py [--force] [--check]

``--check`` also prunes a tiny random Llama with Torch-Pruning there and runs it (the smoke test of the venv).
``NOTES`` holds what the bench found about Torch-Pruning on this stack; ``bench/prune.py`` copies it to its JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import TRANSFORMERS, PinnedVenv  # noqa: E402  (shared pins and the venv builder)

TORCH_PRUNING = "1.6.1"
REPORTED = ["torch", "transformers", "torch-pruning", "torch_pruning", "shoestring", "numpy", "accelerate",
            "safetensors", "tokenizers"]

# What the bench found about Torch-Pruning 1.6.1 on this stack (bench/prune.py writes them to its JSON's notes).
NOTES = [
    "Torch-Pruning's LLM example (examples/LLMs/prune_llm.py in its repository) passes the model output to its graph "
    "tracer; on transformers 5.23 that fails with AttributeError: 'tuple' object has no attribute 'grad_fn' (the "
    "KV cache in the output; upstream issue 455). output_transform=lambda o: o.logits fixes it and is used here.",
    "Head pruning: Torch-Pruning's dependency group of every q/k/v projection grows without end, so MetaPruner never "
    "returns once one of them may be a root (upstream: VainF/Torch-Pruning issues 527 and 456 report the same hang). "
    "The cause is the rotary embedding: on a 1-layer random Llama with apply_rotary_pos_emb replaced by the identity "
    "the group closes (torch_pruning.tp_heads.one_layer_rope_check), with GQA and with plain multi-head attention. "
    "Its GQA mode, had it run, drops query heads inside each key-value group and keeps every key and value head "
    "(base_pruner.py: the k/v deps of the group are emptied), so it would not shrink the KV cache.",
    "The LLM example prunes the hidden size too (pruning_ratio applies to the residual stream); here attention and "
    "down_proj are ignored_layers so only MLP channels go, as on our side.",
    "torch_pruning.__version__ reports 1.6.0 in the 1.6.1 wheel; the example's GroupNormImportance is not in 1.6.1 "
    "(GroupMagnitudeImportance(p=2) is its equivalent).",
    "Torch-Pruning does not update model.config: save_pretrained then from_pretrained fails on the width mismatch "
    "unless intermediate_size is set by hand (see cases.tp.*.save_pretrained).",
]

CHECK = """
import torch, transformers as T, torch_pruning as tp
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
m = T.LlamaForCausalLM(cfg).eval()
ids = torch.randint(0, 64, (1, 8))
blocks = m.model.layers
ignored = [m.lm_head] + [b.self_attn for b in blocks] + [b.mlp.down_proj for b in blocks]  # as bench/prune.py
pruner = tp.pruner.MetaPruner(m, ids, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=0.25,
                              ignored_layers=ignored, output_transform=lambda out: out.logits)
pruner.step()
assert [b.mlp.gate_proj.out_features for b in blocks] == [36, 36], [b.mlp.gate_proj.out_features for b in blocks]
m(input_ids=ids)
print("torch-pruning", tp.__version__, "prunes a tiny Llama's MLP: 48 -> 36 channels, and it still runs")
"""


VENV = PinnedVenv("prune", ("torch-pruning", TORCH_PRUNING), TRANSFORMERS, project=True,
                  reported=REPORTED, check_code=CHECK)
ensure, installed_versions, python_path = VENV.ensure, VENV.installed_versions, VENV.python

if __name__ == "__main__":
    VENV.main(sys.argv)
