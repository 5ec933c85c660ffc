"""Build (once) and locate the venv of kvpress, the anchor of ``bench/kv.py``: ``bench/.cache/kvpress-venv``.

kvpress 0.5.2 fails on the project's transformers 5.23 with every press (``KeyError: 'cache_position'`` in
``presses/base_press.py``: transformers 5 no longer passes ``cache_position`` to the attention modules'
forward hooks), so it gets its own venv with the newest transformers 4.x (4.57.6, which kvpress 0.5.2
accepts: ``transformers>=4.56``), torch held at the project's local CPU wheel by a constraints file.
``python bench/_kv_venv.py --check`` also runs one press on a tiny random Llama there and checks that it
really shortened the cache.

The project is not installed there: the anchor side runs as a subprocess (``bench/_kv_anchor.py``) on the
dequantised SmolLM2 folder, which plain ``AutoModelForCausalLM.from_pretrained`` loads.

    python bench/_kv_venv.py [--force] [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import PinnedVenv  # noqa: E402  (the venv builder the anchors share)

KVPRESS = "0.5.2"
TRANSFORMERS = "4.57.6"  # newest 4.x; kvpress 0.5.2 needs >= 4.56 and breaks on 5.x
REPORTED = ["torch", "transformers", "kvpress", "numpy", "accelerate", "safetensors", "tokenizers"]

CHECK = """
import torch, transformers as T
from kvpress import SnapKVPress
from transformers import DynamicCache
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
m = T.LlamaForCausalLM(cfg).eval()
cache = DynamicCache()
with torch.no_grad(), SnapKVPress(compression_ratio=0.5, window_size=8)(m):
    m.model(input_ids=torch.randint(0, 64, (1, 100)), past_key_values=cache)
n = [cache.layers[i].keys.shape[-2] for i in range(2)]
assert n == [50, 50], n
print("kvpress compresses: 100 ->", n, "tokens per layer")
"""


VENV = PinnedVenv("kvpress", ("kvpress", KVPRESS), TRANSFORMERS, project=False,
                  reported=REPORTED, check_code=CHECK)
ensure, installed_versions, python_path = VENV.ensure, VENV.installed_versions, VENV.python

if __name__ == "__main__":
    VENV.main(sys.argv)
