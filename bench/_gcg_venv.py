"""Build (once) and locate the venv of nanoGCG, the anchor of ``bench/gcg.py``: ``bench/.cache/nanogcg-venv``.

nanoGCG 0.3.0 (the newest) pins ``transformers<=4.47.1``; 0.2.3 installs beside transformers 5.23 but its default
prefix cache fails there (``'DynamicCache' object is not subscriptable``). So the anchor gets its own venv with
nanoGCG 0.3.0 and transformers 4.47.1 (the newest release it accepts), where its prefix cache is a list of key and
value tensors per layer, as it expects; torch is held at the project's local CPU wheel by a constraints file.

The project is not installed there: the anchor side runs as a subprocess (``bench/_gcg_anchor.py``) on the
dequantised SmolLM2 folder, which plain ``AutoModelForCausalLM.from_pretrained`` loads.

    python bench/_gcg_venv.py [--force] [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import PinnedVenv  # noqa: E402  (the venv builder the anchors share)

NANOGCG = "0.3.0"
TRANSFORMERS = "4.47.1"  # nanoGCG 0.3.0 declares transformers<=4.47.1
REPORTED = ["torch", "transformers", "nanogcg", "numpy", "scipy", "safetensors", "tokenizers"]

CHECK = """
import torch, transformers as T, nanogcg
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
m = T.LlamaForCausalLM(cfg).eval()
print("nanogcg", nanogcg.__name__, "ok")
"""

VENV = PinnedVenv("nanogcg", ("nanogcg", NANOGCG), TRANSFORMERS, project=False, reported=REPORTED, check_code=CHECK)

if __name__ == "__main__":
    VENV.main(sys.argv[1:])
