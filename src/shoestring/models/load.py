"""``shoestring.load(spec)``: one call for an alias, a folder, a GGUF file, a hub id or a model in memory."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..errors import ShoestringError, nearest
from .registry import ALIASES, DEFAULT_MODEL

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_dtype(dtype) -> torch.dtype | str:
    """``"bf16"`` -> ``torch.bfloat16``; ``"auto"`` stays ``"auto"``; anything else is a clear error."""
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ShoestringError(f"unknown dtype '{dtype}'", "use one of float32, bfloat16, float16 or auto")


def resolve_device(device: str | None) -> str:
    """Check that the device exists here; ``"auto"`` picks cuda, then mps, then cpu."""
    device = device or "cpu"
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cpu":
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ShoestringError(f"device '{device}' is not available here (no CUDA GPU found)", "use --device cpu")
        suffix = device.split(":", 1)[1] if ":" in device else "0"
        if not suffix.isdigit():
            raise ShoestringError(f"bad device '{device}'", "use cuda or cuda:N with N a GPU number")
        index = int(suffix)
        if index >= torch.cuda.device_count():
            raise ShoestringError(f"device '{device}' does not exist", f"this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ShoestringError("device 'mps' is not available here", "use --device cpu")
        return device
    raise ShoestringError(f"unknown device '{device}'", "use cpu, cuda, cuda:N, mps or auto")


def free_memory(device: str) -> int | None:
    """Bytes free on ``device`` (RAM for cpu); ``None`` when unknown."""
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _param_count_from_safetensors(folder: Path) -> int | None:
    from ..safetensors_header import read_header

    files = list(folder.glob("*.safetensors"))
    if not files:
        return None
    return sum(math.prod(meta["shape"]) for f in files for meta in read_header(f)[1].values())


def check_fits(n_params: int | None, dtype, device: str, device_map) -> None:
    """Refuse early, with the estimate, when the weights cannot fit (instead of an OOM crash later)."""
    if n_params is None or device_map is not None:
        return
    per = torch.empty((), dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32).element_size()
    need, free = n_params * per, free_memory(device)
    if free is not None and need > 0.9 * free:
        raise ShoestringError(
            f"out of memory: the weights need ~{need / 2**30:.1f} GiB in {str(dtype).replace('torch.', '')} "
            f"but {device} has {free / 2**30:.1f} GiB free",
            "use --dtype bfloat16, device_map='auto' (spreads layers over devices and RAM), or a smaller model",
        )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or the hub endpoint does not answer a TCP connect quickly."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def load(
    spec=DEFAULT_MODEL,
    *,
    tokenizer=None,
    dtype="float32",
    device: str | None = "cpu",
    device_map=None,
    trust_remote_code: bool = False,
    check: bool = True,
):
    """Load a causal LM and wrap it as a :class:`shoestring.LM`.

    Parameters
    ----------
    spec
        An alias (``shoestring models`` lists them; default ``smollm2-135m``, bundled and offline),
        a local model folder, a ``.gguf`` file, a hub id (``org/name``, needs network), or a
        transformers model already in memory (pass its ``tokenizer`` too).
    dtype
        ``float32`` (default), ``bfloat16``, ``float16`` or ``auto``.
    device
        ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
    device_map
        Passed to transformers (``"auto"`` uses accelerate to spread a model larger than one device).
    trust_remote_code
        Off by default: never run code from a model repository unless asked.
    check
        Run the hook invariants on a 4-token input the first time a model class is loaded.

    Examples
    --------
    >>> import shoestring
    >>> lm = shoestring.load()  # doctest: +SKIP
    >>> lm.generate("The capital of France is", max_new_tokens=3)  # doctest: +SKIP
    [' Paris.']
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .lm import LM

    torch_dtype = resolve_dtype(dtype)
    device = resolve_device(device) if device_map is None else device
    if isinstance(spec, torch.nn.Module):
        if tokenizer is None:
            raise ShoestringError("a model in memory needs its tokenizer", "call load(model, tokenizer=tok)")
        return LM(spec, tokenizer, name=type(spec).__name__, check=check)
    if not isinstance(spec, (str, os.PathLike)):
        raise ShoestringError(f"cannot load a {type(spec).__name__}", "pass an alias, a folder, a .gguf file, a hub id or a model")
    spec = str(spec)
    kwargs = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code)
    if device_map is not None:
        kwargs["device_map"] = device_map
    name, source = spec, spec
    if spec in ALIASES:
        source = ALIASES[spec].source
    if source == "bundled":
        from .bundled import cached_dir

        folder = cached_dir()
        check_fits(_param_count_from_safetensors(folder), torch_dtype, device, device_map)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        tok = AutoTokenizer.from_pretrained(folder)
    elif Path(source).expanduser().exists():
        path = Path(source).expanduser()
        if path.is_file():
            if path.suffix != ".gguf":
                raise ShoestringError(f"{path} is a file but not a .gguf", "pass a model folder (config.json + safetensors) or a .gguf file")
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **kwargs)
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        else:
            if not (path / "config.json").exists():
                raise ShoestringError(f"{path} has no config.json", "point at a folder written by save_pretrained")
            check_fits(_param_count_from_safetensors(path), torch_dtype, device, device_map)
            from ..prune.checkpoint import is_pruned_folder, load_pruned

            if is_pruned_folder(path):  # per-layer widths after pruning: rebuilt from config.json's widths
                model = load_pruned(path, torch_dtype, trust_remote_code)
            else:
                model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    elif _looks_like_hub_id(source):
        online = _hub_reachable()
        try:
            if not online:  # offline: the local HF cache only, without retries
                kwargs["local_files_only"] = True
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=not online)
        except OSError:
            why = "the hub is not reachable from here and it is not in the local HF cache" if not online else "not found, gated, or misspelt on the hub"
            raise ShoestringError(
                f"cannot load '{source}': {why}",
                f"use the bundled '{DEFAULT_MODEL}', a local folder, or a .gguf file",
            ) from None
    else:
        hint = nearest(spec, ALIASES)
        raise ShoestringError(
            f"unknown model '{spec}'",
            (f"did you mean {', '.join(hint)}? " if hint else "")
            + "use an alias (`shoestring models`), a local folder, a .gguf file, or a hub id org/name",
        )
    if device_map is None and device != "cpu":
        model.to(device)
    return LM(model, tok, name=name, check=check)
