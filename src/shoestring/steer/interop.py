"""Steering vectors in and out: lm-evaluation-harness's steered model, llama.cpp control vectors, repeng.

Layer conventions. All three formats steer the *output* of a decoder block counted from 0, which is our
``blocks.{L}.hook_resid_post`` (= HF ``hidden_states[L + 1]``); our ``blocks.{L}.hook_resid_pre`` for
``L >= 1`` is the same tensor as the output of block ``L - 1`` and is exported as such:

- lm-evaluation-harness (``lm_eval --model steered``): hookpoint ``layers.L``, a forward hook on that module
  of ``model.base_model`` that edits its output (``lm_eval/models/hf_steered.py``);
- llama.cpp (``--control-vector``): tensor ``direction.L``, added to ``l_out`` of layer ``il = L``;
  ``direction.0`` is rejected (``common/common.cpp``, ``src/llama-adapter.cpp``);
- repeng: ``ControlVector.directions[L]``, which ``ControlModel`` adds to the output of
  ``model.model.layers[L]`` and ``read_representations`` fits on ``hidden_states[L + 1]``; negative ids count
  from the end, ``n_layers + L`` (``repeng/control.py``, ``repeng/extract.py``).

>>> cmd = export_lm_eval(direction, "happy.pt", scale=4.0)      # doctest: +SKIP
>>> export_gguf(direction, "happy.gguf", scale=4.0)              # doctest: +SKIP
>>> d = import_repeng("happy.gguf")                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ShoestringError
from ..runs.atomic import atomic_path
from .direction import Direction

POST = "blocks.{layer}.hook_resid_post"
PRE = "blocks.{layer}.hook_resid_pre"
ARCH = "controlvector"
LM_EVAL_ACTIONS = ("add", "clamp")


def output_vectors(direction: Direction, layers=None) -> dict[int, torch.Tensor]:
    """``{block: vector}``: each vector is to be added to the output of decoder block ``block`` (0-based).

    ``hook_resid_post`` at ``L`` maps to block ``L``; ``hook_resid_pre`` at ``L >= 1`` to block ``L - 1``
    (the same tensor in an unmodified model). ``layers`` picks some of the direction's own layers.

    Raises
    ------
    ShoestringError
        For another hook, ``hook_resid_pre`` at layer 0 (the embeddings, no block's output), a missing
        layer, or a position sequence (ActAdd): these formats add one vector at every position.
    """
    if direction.hook not in (POST, PRE):
        raise ShoestringError(f"a direction at '{direction.hook}' cannot be exported",
                              "these formats steer the residual stream: fit on blocks.{layer}.hook_resid_post")
    chosen = direction.layers if layers is None else [int(x) for x in layers]
    missing = [x for x in chosen if x not in direction.vectors]
    if missing:
        raise ShoestringError(f"the direction has no vector for layer(s) {missing}",
                              f"it has layers {direction.layers}")
    out = {}
    for layer in chosen:
        v = direction.vectors[layer]
        if v.ndim != 1:
            raise ShoestringError(f"layer {layer} holds a sequence of {v.shape[0]} vectors (ActAdd), not one",
                                  "export a per-layer direction (mean_diff, pca_diff, probe or an SAE feature)")
        if direction.hook == PRE and layer == 0:
            raise ShoestringError("blocks.0.hook_resid_pre is the embedding output, which these formats cannot steer",
                                  "use a layer >= 1 (resid_pre L is exported as the output of block L-1)")
        out[layer - 1 if direction.hook == PRE else layer] = v.float().contiguous()
    return out


# -- lm-evaluation-harness -------------------------------------------------------------------------------
def blocks_path(lm) -> str:
    """The path of ``lm``'s decoder-block list inside ``model.base_model`` (lm-eval's hookpoint prefix):
    ``layers`` for Llama, Mistral, Qwen, Gemma, OLMo, Phi and GPT-NeoX, ``h`` for GPT-2 and GPT-J,
    ``decoder.layers`` for OPT."""
    for name, module in lm.model.base_model.named_modules():
        if module is lm.anatomy.blocks:
            return name
    raise ShoestringError(f"{type(lm.model).__name__}: its blocks are not under model.base_model",
                          "pass blocks= by hand (the module path lm-eval should hook)")


def _pretrained(model: str) -> str:
    from ..models.registry import ALIASES

    alias = ALIASES.get(model)
    if alias is None:
        return model or "MODEL"
    if alias.source == "bundled":  # a GGUF of the hub model below; lm-eval wants the hub id
        hub = ALIASES.get(f"{model}-hub")
        return hub.source if hub else "MODEL"
    return alias.source


def export_lm_eval(direction: Direction, path, *, scale: float = 1.0, layers=None, action: str = "add",
                   blocks: str = "layers", lm=None, pretrained: str | None = None) -> str:
    """Write the ``steer_path`` file of lm-evaluation-harness's ``steered`` model; return the command line.

    The file is a ``.pt`` dict ``{hookpoint: {"steering_vector": Tensor[d_model], "steering_coefficient":
    float, "action": "add" | "clamp", "bias": None, "head_index": None}}``, loaded there with
    ``torch.load(weights_only=True)`` (plain tensors, floats, strings and ``None``: no pickled objects).
    Source: ``lm_eval/models/hf_steered.py`` (``SteeredModel.__init__``, ``steer``, ``add``, ``clamp``).
    Its CSV form only derives vectors from SAE decoder rows (sparsify, sae_lens), so it cannot hold ours.

    Layers: the hookpoint of our ``blocks.L.hook_resid_post`` is ``f"{blocks}.{L}"``: lm-eval registers a
    forward hook on that module of ``model.base_model`` and edits its output (``output[0]`` of a tuple),
    i.e. the residual stream after block ``L``, = ``hidden_states[L + 1]`` (no off-by-one).

    Parameters
    ----------
    scale
        ``steering_coefficient``. ``action="add"`` adds ``scale * v`` at every position, as
        ``Steer(mode="add", scale=scale)``; ``"clamp"`` sets the projection on ``v / |v|`` to ``scale``, as
        ``Steer(mode="ablate_add", scale=scale)``.
    blocks
        The block list's module path under ``model.base_model`` (see :func:`blocks_path`); ``lm=`` finds it.
    pretrained
        For the returned command; by default the direction's model (an alias becomes its hub id).

    Notes
    -----
    Older lm-eval releases build the ``add`` hooks with a ``lambda`` in a loop, so every hookpoint gets the
    last entry's vector; with those, export one layer per file.
    """
    if action not in LM_EVAL_ACTIONS:
        raise ShoestringError(f"unknown lm-eval action '{action}'", f"use one of {', '.join(LM_EVAL_ACTIONS)}")
    path = Path(path)
    if path.suffix not in (".pt", ".pth"):
        raise ShoestringError(f"{path.name}: lm-eval reads steering vectors from .pt or .pth files",
                              "name it e.g. steer.pt")
    prefix = blocks_path(lm) if lm is not None else blocks
    config = {f"{prefix}.{block}": {"steering_vector": v.clone(), "steering_coefficient": float(scale),
                                    "action": action, "bias": None, "head_index": None}
              for block, v in sorted(output_vectors(direction, layers).items())}
    with atomic_path(path) as tmp:
        torch.save(config, tmp)
    model = pretrained or _pretrained(direction.model)
    return f"lm_eval --model steered --model_args pretrained={model},steer_path={path.resolve()} --tasks TASKS"


# -- llama.cpp control vectors (GGUF), as written by repeng --------------------------------------------------
def export_gguf(direction: Direction, path, *, scale: float = 1.0, model_hint: str = "llama", layers=None) -> Path:
    """Write a llama.cpp control vector (``--control-vector FILE``), the layout of repeng's ``export_gguf``.

    GGUF with ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (an HF
    ``model_type``), ``controlvector.layer_count`` and one F32 1-D tensor ``direction.{N}`` per layer,
    holding ``scale * v`` (llama.cpp multiplies by ``--control-vector-scaled``'s strength on top).
    ``shoestring.*`` keys keep method, model and metadata so :func:`import_repeng` restores the direction.

    Layers: our ``blocks.L.hook_resid_post`` is ``direction.L``. llama.cpp's ``common_control_vector_load_one``
    stores ``direction.N`` at row ``N - 1`` and ``llama_adapter_cvec::apply`` copies row ``il - 1`` into
    the tensor added to ``l_out`` of layer ``il`` (``build_cvec(cur, il)`` at the end of block ``il``,
    0-based), so ``N`` is the 0-based block whose output is steered. ``direction.0`` makes llama.cpp skip
    the whole file, so layer 0 is refused here. Sources: llama.cpp ``common/common.cpp``,
    ``src/llama-adapter.cpp``, ``src/models/*.cpp``; repeng ``repeng/extract.py``.
    """
    import gguf

    vectors = output_vectors(direction, layers)
    if 0 in vectors:
        raise ShoestringError("llama.cpp cannot steer the output of block 0 (it rejects a direction.0 tensor)",
                              "export the other layers (layers= / --layers)")
    path = Path(path)
    meta = dict(direction.meta, **({"exported_scale": float(scale)} if scale != 1.0 else {}))
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(vectors))
        writer.add_string("shoestring.method", direction.method)
        writer.add_string("shoestring.model", direction.model)
        writer.add_string("shoestring.meta", json.dumps(meta))
        for block, v in sorted(vectors.items()):
            writer.add_tensor(f"direction.{block}", (float(scale) * v).numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def _string(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def _read_gguf(path: Path):
    """``(model_hint, {N: array}, shoestring fields)`` of a control-vector GGUF."""
    import gguf

    if not path.is_file():
        raise ShoestringError(f"no file at {path}",
                              "pass a control-vector .gguf (repeng's export_gguf or shoestring steer export)")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is the same user mistake
        raise ShoestringError(f"{path} is not a GGUF file ({type(e).__name__})", "pass a control-vector .gguf")
    arch = _string(reader, "general.architecture")
    if arch != ARCH:
        raise ShoestringError(f"{path} is a GGUF of architecture '{arch}', not a control vector",
                              "pass a control vector (general.architecture = controlvector), not a model")
    directions = {}
    for t in reader.tensors:
        m = re.fullmatch(r"direction\.(-?\d+)", t.name)
        if m is None:
            continue
        data = np.asarray(t.data)
        if data.dtype not in (np.float32, np.float16) or data.squeeze().ndim != 1:
            raise ShoestringError(f"{path}: tensor {t.name} is not a 1-D float vector",
                                  "re-export the control vector as F32")
        directions[int(m.group(1))] = data.reshape(-1).astype(np.float32)
    extra = {k: _string(reader, f"shoestring.{k}") for k in ("method", "model", "meta")}
    return _string(reader, f"{ARCH}.model_hint") or "", directions, extra


def import_repeng(source, *, model: str = "", n_layers: int | None = None) -> Direction:
    """A :class:`Direction` from a llama.cpp control-vector GGUF or a repeng ``ControlVector``.

    Parameters
    ----------
    source
        A path to a ``.gguf`` (``general.architecture = "controlvector"``, tensors ``direction.{N}``), or an
        object with ``directions: dict[int, np.ndarray]`` and ``model_type`` (repeng's ``ControlVector``).
    model
        The model name to record (a repeng file only knows the ``model_type``, kept in ``meta``).
    n_layers
        Needed only for negative repeng layer ids (``-1`` is the last block: ``n_layers - 1``).

    Returns
    -------
    Direction
        ``hook = blocks.{layer}.hook_resid_post`` with ``vectors[N] = directions[N]``: repeng's
        ``ControlModule`` adds ``directions[N]`` to the output of ``model.model.layers[N]`` and llama.cpp adds
        ``direction.N`` to the output of block ``N`` (see :func:`export_gguf`), both our resid_post ``N``.
    """
    if isinstance(source, (str, os.PathLike)):
        hint, directions, extra = _read_gguf(Path(source))
        origin = "gguf"
    elif hasattr(source, "directions") and isinstance(getattr(source, "directions"), dict):
        hint, directions, extra = str(getattr(source, "model_type", "")), source.directions, {}
        origin = "repeng"
    else:
        raise ShoestringError(f"cannot import a {type(source).__name__}",
                              "pass a control-vector .gguf path or a repeng ControlVector (.directions, .model_type)")
    if not directions:
        raise ShoestringError("the control vector has no direction.N tensors",
                              "export it again with at least one layer")
    vectors = {}
    for key, vec in directions.items():
        layer = int(key)
        if layer < 0:
            if n_layers is None:
                raise ShoestringError(f"layer id {layer} counts from the end",
                                      "pass n_layers= (the model's block count)")
            layer += n_layers
        vectors[layer] = torch.from_numpy(np.array(vec, dtype=np.float32).reshape(-1))  # a copy
    if extra.get("meta") is not None:  # written by export_gguf: restore what it kept
        try:
            meta = json.loads(extra["meta"])
        except json.JSONDecodeError:
            meta = {}
        return Direction(vectors, extra.get("method") or "imported", POST, model or extra.get("model") or "", meta)
    return Direction(vectors, "repeng", POST, model, {"imported_from": origin, "model_hint": hint})


import_gguf = import_repeng
