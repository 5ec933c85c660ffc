"""Checkpoints in the format SAELens writes (``sae_weights.safetensors`` + ``cfg.json``) and reads, and
Gemma Scope's ``params.npz``.

Tensors: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``, ``b_dec [d_in]``, plus
``threshold [d_sae]`` for JumpReLU (BatchTopK is saved as the JumpReLU it becomes at inference, as SAELens
does). ``cfg.json`` carries ``d_in``, ``d_sae``, ``architecture``, ``dtype``, ``device``,
``apply_b_dec_to_input``, ``normalize_activations``, ``k`` for TopK, and ``metadata`` with ``hook_name``
and ``model_name`` (SAELens 6 layout); SAELens 5 files with top-level ``hook_name`` and
``activation_fn_kwargs`` load too. Hook names are TransformerLens names, the same as ours.

Writes go to a temporary folder that is renamed into place, so a checkpoint is never half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ShoestringError
from .base import SAE, SAEConfig

WEIGHTS, CFG = "sae_weights.safetensors", "cfg.json"


def sae_cfg_json(sae: SAE) -> dict:
    c = sae.cfg
    arch = "jumprelu" if c.architecture == "batchtopk" else c.architecture
    if c.is_transcoder:  # SAELens's names (it has no TopK transcoder: that one only loads here)
        arch = {"standard": "transcoder", "jumprelu": "jumprelu_transcoder"}.get(arch, arch)
    out = {
        "architecture": arch,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": c.dtype,
        "device": "cpu",
        "apply_b_dec_to_input": bool(c.apply_b_dec_to_input and not c.is_transcoder),
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"model_name": c.model_name, "hook_name": c.hook_name, "hook_head_index": None,
                     "prepend_bos": True, "sae_lens_training_version": None},
    }
    if arch == "topk":
        out["k"] = c.k
    if c.is_transcoder:
        out["d_out"] = int(c.extra.get("d_out", c.d_in))
        out["metadata"]["hook_name_out"] = c.hook_name_out
    out["shoestring"] = {"architecture": c.architecture, "k": c.k, "hook_name_out": c.hook_name_out,
                         "extra": {k: v for k, v in c.extra.items() if _jsonable(v)}}
    return out


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def save_sae(sae: SAE, folder, extra_files: dict[str, dict] | None = None) -> Path:
    """Write ``folder/sae_weights.safetensors`` and ``folder/cfg.json`` (replacing the folder atomically).

    The scaling factor used in training is folded into the weights first, so the files describe an SAE on
    raw activations (``normalize_activations: "none"``)."""
    folder = Path(folder)
    sae.fold_scaling()
    tensors = {"W_enc": sae.W_enc, "W_dec": sae.W_dec, "b_enc": sae.b_enc, "b_dec": sae.b_dec}
    tensors.update(sae.extra_state_tensors())
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CFG).write_text(json.dumps(sae_cfg_json(sae), indent=2))
        for name, obj in (extra_files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _bad(folder: Path, problem: str, fix: str):
    return ShoestringError(f"SAE checkpoint {folder}: {problem}", fix)


def read_cfg(folder: Path) -> dict:
    path = folder / CFG
    if not path.is_file():
        raise _bad(folder, f"no {CFG}", f"an SAELens checkpoint folder holds {WEIGHTS} and {CFG}; copy the cfg.json that came with the weights")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(folder, f"{CFG} is not valid JSON ({e})", "restore the file from the original checkpoint")
    if not isinstance(cfg, dict):
        raise _bad(folder, f"{CFG} holds {type(cfg).__name__}, not an object", "restore the file from the original checkpoint")
    return cfg


def config_from_json(cfg: dict, folder: Path, hook_name: str | None = None) -> SAEConfig:
    """Map an SAELens (5 or 6) or shoestring ``cfg.json`` onto :class:`SAEConfig`, with one-line errors."""
    missing = [k for k in ("d_in", "d_sae") if k not in cfg]
    if missing:
        raise _bad(folder, f"{CFG} lacks {', '.join(missing)}", "add the SAE's input width d_in and latent count d_sae")
    meta = cfg.get("metadata") or {}
    ours = cfg.get("shoestring") or {}
    arch = ours.get("architecture") or cfg.get("architecture") or cfg.get("activation_fn_str") or "standard"
    if arch in ("standard", "relu") and cfg.get("activation_fn_str") == "topk":
        arch = "topk"  # SAELens <= 5 wrote TopK SAEs as architecture "standard" with activation_fn_str "topk"
    arch = {"relu": "standard", "transcoder": "standard", "jumprelu_transcoder": "jumprelu"}.get(arch, arch)
    k = ours.get("k") or cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    norm = cfg.get("normalize_activations", "none")
    norm = "none" if norm in (None, False) else "expected_average_only_in" if norm is True else norm
    # SAELens folds the "expected_average_only_in" factor into the weights when training ends: identity here.
    if norm not in ("none", "expected_average_only_in"):
        raise _bad(folder, f"normalize_activations '{norm}' changes activations at inference and is not supported",
                   "use an SAE trained with normalize_activations none or expected_average_only_in")
    scaling = float(ours.get("scaling_factor", 1.0))
    extra = dict(ours.get("extra") or {})
    if cfg.get("d_out") and int(cfg["d_out"]) != int(cfg["d_in"]):
        extra["d_out"] = int(cfg["d_out"])
    try:
        return SAEConfig(
            d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]), architecture=str(arch), k=None if k is None else int(k),
            hook_name=hook_name or meta.get("hook_name") or cfg.get("hook_name") or "",
            hook_name_out=ours.get("hook_name_out") or meta.get("hook_name_out") or cfg.get("hook_name_out"),
            model_name=meta.get("model_name") or cfg.get("model_name") or "",
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)), scaling_factor=scaling,
            dtype=str(cfg.get("dtype", "float32")).replace("torch.", ""), device="cpu", extra=extra)
    except (TypeError, ValueError) as e:
        raise _bad(folder, f"{CFG} has a value of the wrong type ({e})", "d_in, d_sae and k must be integers")


def load_sae(path, *, hook_name: str | None = None, device: str = "cpu", dtype: str | None = None) -> SAE:
    """Load an SAE from an SAELens-format folder (ours or SAELens's) or a Gemma Scope ``params.npz``.

    ``hook_name`` overrides (or, for Gemma Scope, supplies) the hook the SAE reads."""
    from . import sae_class

    path = Path(path)
    if path.is_dir() and (path / "params.npz").is_file() and not (path / WEIGHTS).is_file():
        path = path / "params.npz"
    if path.suffix == ".npz":
        return _load_gemma_scope(path, hook_name, device, dtype)
    if not path.is_dir():
        raise ShoestringError(f"no SAE checkpoint folder at {path}", f"pass a folder holding {WEIGHTS} and {CFG}, or a Gemma Scope params.npz")
    raw = read_cfg(path)
    cfg = config_from_json(raw, path, hook_name)
    if not (path / WEIGHTS).is_file():
        raise _bad(path, f"no {WEIGHTS}", "copy the weights file next to cfg.json")
    tensors = load_file(str(path / WEIGHTS))
    if cfg.architecture == "jumprelu" or ("threshold" in tensors and cfg.architecture == "standard"):
        cfg.architecture = "jumprelu"
    rescale = bool(raw.get("rescale_acts_by_decoder_norm")) and cfg.architecture == "topk"
    return _build(sae_class(cfg.architecture), cfg, tensors, path, device, dtype, rescale=rescale)


def _build(cls, cfg: SAEConfig, tensors: dict, path: Path, device: str, dtype: str | None, rescale: bool = False) -> SAE:
    need = ["W_enc", "W_dec", "b_enc", "b_dec"] + (["threshold"] if cls.architecture in ("jumprelu", "batchtopk") else [])
    absent = [k for k in need if k not in tensors]
    if absent:
        raise _bad(path, f"the weights lack {', '.join(absent)}", f"a {cfg.architecture} SAE needs {', '.join(need)}")
    d_out = int(cfg.extra.get("d_out", cfg.d_in))
    expect = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, d_out), "b_enc": (cfg.d_sae,), "b_dec": (d_out,),
              "threshold": (cfg.d_sae,)}
    for name in need:
        if tuple(tensors[name].shape) != expect[name]:
            raise _bad(path, f"{name} has shape {list(tensors[name].shape)} but cfg.json (d_in={cfg.d_in}, d_sae={cfg.d_sae}) implies {list(expect[name])}",
                       "the cfg.json does not belong to these weights: fix d_in/d_sae or use the matching cfg.json")
    if dtype:
        cfg.dtype = dtype
    if cfg.dtype not in ("float32", "bfloat16", "float16"):
        cfg.dtype = "float32"
    cfg.device = device
    sae = cls(cfg)
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(sae, name).copy_(tensors[name])
        if rescale:  # SAELens TopK "rescale_acts_by_decoder_norm": fold the decoder norms (a no-op once folded)
            n = sae.W_dec.norm(dim=1).clamp_min(1e-12)
            sae.W_enc *= n
            sae.b_enc *= n
            sae.W_dec /= n[:, None]
        if hasattr(sae, "load_extra") and "threshold" in tensors:
            sae.load_extra(tensors)
    return sae.eval()


def _load_gemma_scope(path: Path, hook_name: str | None, device: str, dtype: str | None) -> SAE:
    """Gemma Scope ``params.npz``: ``W_enc [d_in, d_sae]``, ``W_dec``, ``b_enc``, ``b_dec``, ``threshold``."""
    from .jumprelu import JumpReLUSAE

    if not path.is_file():
        raise ShoestringError(f"no file {path}", "pass the params.npz of a Gemma Scope SAE")
    with np.load(path) as npz:
        tensors = {k: torch.from_numpy(np.asarray(npz[k], dtype=np.float32)) for k in npz.files}
    if "W_enc" not in tensors:
        raise _bad(path, "params.npz has no W_enc", "pass a Gemma Scope params.npz (W_enc, W_dec, b_enc, b_dec, threshold)")
    d_in, d_sae = tensors["W_enc"].shape
    if not hook_name:
        raise ShoestringError(f"{path} does not say which hook it reads", "pass hook_name= (e.g. blocks.12.hook_resid_post for layer_12 of the residual release)")
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="jumprelu", hook_name=hook_name, dtype=dtype or "float32")
    return _build(JumpReLUSAE, cfg, tensors, path, device, dtype)
