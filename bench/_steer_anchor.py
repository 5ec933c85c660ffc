"""The anchor side of ``bench/steer.py``, run in an anchor's own venv (``bench/_steer_venvs.py``), as a server
that ``bench/steer.py`` drives call by call, so the anchor's calls are interleaved with ours and with plain
HF ``generate`` in the same rounds (only one process computes at a time; the others wait on a pipe).

    python bench/_steer_anchor.py --anchor repeng|steering-vectors --job job.json

``job.json``: ``model`` (a folder plain ``from_pretrained`` loads), ``layer``, ``vector`` (a safetensors file
with tensor ``v``), ``scale``, ``sweep_scales``, ``max_new_tokens``, ``threads``, and the batch tokenised by
the caller (identical inputs; transformers 4.x cannot read the tokenizer files transformers 5 writes):
``input_ids``, ``attention_mask`` (left-padded), ``position_ids`` (for the logits check) and ``pad_token_id``.

Protocol: one JSON object per line on stdin, one JSON reply per line on the original stdout (anything the
libraries print goes to stderr). Requests:

- ``{"op": "info"}``: versions, threads, how the model was loaded;
- ``{"op": "time", "what": "plain" | "steered" | "sweep"}``: run it once, reply ``{"s": seconds}`` (inner
  wall clock, perf_counter around the call; the caller also times the round trip);
- ``{"op": "outputs", "path": FILE}``: write the greedy new token ids (plain, steered, every sweep scale) and
  the last-position logits of one forward over the batch, plain and steered, to ``FILE`` (safetensors);
- ``{"op": "quit"}``.

An exception in a request is replied as ``{"error": "..."}``; the server then carries on.

How each library steers (its documented use, with one control on the model at a time):

- repeng 0.4.0: ``ControlModel(model, [layer])`` wraps decoder layer ``layer``; ``set_control(ControlVector(
  model_type, {layer: v}), scale)`` adds ``scale * v`` to that layer's output; ``reset()`` removes it (the
  plain baseline runs on the same wrapped model, uncontrolled);
- steering-vectors: ``SteeringVector({layer: v}, layer_type="decoder_block").apply(model, multiplier=scale)``
  (a forward hook on decoder layer ``layer``, removed when the context exits).

A sweep is one ``generate`` per scale: neither library can give each row of a batch its own control.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from importlib.metadata import version

import torch
import transformers as T
from safetensors.torch import load_file, save_file


def load_model(folder: str):
    """Plain ``from_pretrained`` on the folder. transformers 5 writes the RoPE base as
    ``rope_parameters.rope_theta``; transformers 4.x reads only ``rope_theta`` and would silently fall back to
    its default (10,000 instead of SmolLM2's 100,000: another model). Copy it over when it is missing."""
    cfg = T.AutoConfig.from_pretrained(folder)
    fixes = []
    rp = getattr(cfg, "rope_parameters", None)
    old = int(T.__version__.split(".")[0]) < 5
    if old and isinstance(rp, dict) and "rope_theta" in rp and getattr(cfg, "rope_theta", None) != rp["rope_theta"]:
        fixes.append(f"config.rope_theta {getattr(cfg, 'rope_theta', None)} -> {rp['rope_theta']} (from rope_parameters, "
                     f"which transformers {T.__version__} does not read)")
        cfg.rope_theta = rp["rope_theta"]
    major, minor = (int(x) for x in T.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # `dtype` is new in transformers 4.56
    model = T.AutoModelForCausalLM.from_pretrained(folder, config=cfg, **{dtype_kw: torch.float32}).eval()
    return model, fixes


def start(job_path: str):
    """An anchor process's start: replies go to a private copy of stdout (stray prints of the libraries go
    to stderr), the job is read, torch gets its threads and the model is loaded.
    Returns ``(proto, job, model, load_fixes)``."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = json.loads(open(job_path).read())
    torch.set_num_threads(int(job["threads"]))
    model, fixes = load_model(job["model"])
    return proto, job, model, fixes


def serve(proto, ops: dict) -> None:
    """The anchor protocol: one JSON request per stdin line (``{"op": ...}``), one JSON reply per line on
    ``proto``; ``ops[name](request) -> reply``; an exception becomes ``{"error": ...}``; ``quit`` ends it."""
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "quit":
                proto.write(json.dumps({"bye": True}) + "\n")
                break
            if req["op"] not in ops:
                raise ValueError(f"unknown op {req['op']!r}")
            rep = ops[req["op"]](req)
        except Exception as e:  # noqa: BLE001 - reported to the caller, which records it
            traceback.print_exc()
            rep = {"error": f"{type(e).__name__}: {e}"[:400]}
        proto.write(json.dumps(rep) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchor", required=True, choices=["repeng", "steering-vectors"])
    ap.add_argument("--job", required=True)
    a = ap.parse_args()
    proto, job, model, fixes = start(a.job)
    enc = {k: torch.tensor(job[k]) for k in ("input_ids", "attention_mask")}
    prompt_len = enc["input_ids"].shape[1]
    n, layer, scale = int(job["max_new_tokens"]), int(job["layer"]), float(job["scale"])
    v = load_file(job["vector"])["v"].float()
    gen = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "pad_token_id": int(job["pad_token_id"])}

    if a.anchor == "repeng":
        from repeng import ControlModel, ControlVector

        cmodel = ControlModel(model, [layer])
        vector = ControlVector(model_type=model.config.model_type, directions={layer: v.numpy()})

        @contextmanager
        def steering(s):
            cmodel.set_control(vector, s)
            try:
                yield
            finally:
                cmodel.reset()

        run = cmodel
    else:
        from steering_vectors import SteeringVector

        sv = SteeringVector(layer_activations={layer: v}, layer_type="decoder_block")

        def steering(s):
            return sv.apply(model, multiplier=s)

        run = model

    def plain():
        with torch.no_grad():
            return run.generate(**enc, **gen)

    def steered(s=scale):
        with torch.no_grad(), steering(s):
            return run.generate(**enc, **gen)

    def sweep():
        return [steered(float(s)) for s in job["sweep_scales"]]

    def check(out):
        for o in out if isinstance(out, list) else [out]:
            if o.shape[1] - prompt_len != n:
                raise RuntimeError(f"generated {o.shape[1] - prompt_len} tokens, not {n}")

    def outputs(path):
        new = {"plain_ids": plain()[:, prompt_len:], "steered_ids": steered()[:, prompt_len:]}
        for s, o in zip(job["sweep_scales"], sweep()):
            new[f"sweep_ids_{float(s)}"] = o[:, prompt_len:]
        fwd = {**enc, "position_ids": torch.tensor(job["position_ids"])}
        with torch.no_grad():
            new["plain_logits"] = run(**fwd).logits[:, -1]
            with steering(scale):
                new["steered_logits"] = run(**fwd).logits[:, -1]
        save_file({k: t.contiguous() for k, t in new.items()}, path)
        return {"path": path}

    def info():
        return {"anchor": a.anchor, "version": version(a.anchor), "torch": torch.__version__,
                "transformers": T.__version__, "numpy": version("numpy"), "threads": torch.get_num_threads(),
                "attn_implementation": getattr(model.config, "_attn_implementation", None), "load_fixes": fixes,
                "pid": os.getpid()}

    timed = {"plain": plain, "steered": steered, "sweep": sweep}

    def time_op(req):
        t0 = time.perf_counter()
        out = timed[req["what"]]()
        rep = {"s": time.perf_counter() - t0}
        check(out)
        return rep

    serve(proto, {"time": time_op, "outputs": lambda req: outputs(req["path"]), "info": lambda req: info()})


if __name__ == "__main__":
    main()
