"""The nanoGCG side of ``bench/gcg.py``, run in nanoGCG's own venv (``bench/_gcg_venv.py``: nanoGCG 0.3.0 on
transformers 4.47.1), one search per process.

    python bench/_gcg_anchor.py --job job.json --out result.json

``job.json``: ``model`` (a folder plain ``from_pretrained`` loads), ``threads``, ``goal``, ``target`` and
``config`` (``GCGConfig`` fields: ``num_steps``, ``search_width``, ``topk``, ``seed``, ``use_prefix_cache``, ...).
The result: nanoGCG's losses per step, the wall-clock time of each step (from one gradient call to the next:
nanoGCG computes the token gradient once per step), the total, the process's peak resident memory above the level
after loading, the best suffix, and the versions that ran. A failure is written as ``{"error": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import traceback
from importlib.metadata import version


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    job = json.loads(open(a.job).read())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(int(job.get("threads", 2)))
    out: dict = {"versions": {p: version(p) for p in ("torch", "transformers", "nanogcg")}}
    try:
        import nanogcg

        from _steer_anchor import load_model  # plain from_pretrained + the RoPE-base fix for transformers 4.x

        tok = load_tokenizer(job["model"])
        model, fixes = load_model(job["model"])
        out["load_fixes"] = fixes
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        config = nanogcg.GCGConfig(**job["config"], verbosity="WARNING")
        from nanogcg.gcg import GCG as NanoGCG

        gcg = NanoGCG(model, tok, config)
        init = gcg.init_buffer

        def recorded_init():  # the loss of the initial suffix: the cross-check that both sides score the same prompt
            buf = init()
            out["initial_loss"] = float(buf.get_lowest_loss())
            return buf

        gcg.init_buffer = recorded_init
        stamps: list[float] = []
        inner = gcg.compute_token_gradient

        def timed_gradient(ids):  # once per step: the step boundaries
            stamps.append(time.perf_counter())
            return inner(ids)

        gcg.compute_token_gradient = timed_gradient
        t0 = time.perf_counter()
        res = gcg.run(job["goal"], job["target"])
        t1 = time.perf_counter()
        ends = stamps[1:] + [t1]
        out.update(losses=[float(x) for x in res.losses], step_seconds=[e - s for s, e in zip(stamps, ends)],
                   seconds=t1 - t0, setup_seconds=stamps[0] - t0 if stamps else None, best_loss=float(res.best_loss),
                   best_string=res.best_string,
                   peak_rss_above_load_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base,
                   prefix_cache_len_after=_cache_len(gcg.prefix_cache))
    except Exception as err:  # recorded, not raised: the bench reports why the anchor could not run
        out["error"] = f"{type(err).__name__}: {err}"
        out["traceback"] = traceback.format_exc()[-2000:]
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, a.out)


def load_tokenizer(folder: str):
    """The folder's tokenizer for transformers 4.x: transformers 5 saves it as ``TokenizersBackend``, a class 4.47
    does not know, so it is rebuilt from ``tokenizer.json`` with the same special tokens and chat template.
    ``bos_token`` is left unset: SmolLM2's tokenizer adds no BOS, its chat template writes ``<|im_start|>`` itself,
    and nanoGCG strips a leading ``bos_token`` from the template (which here would drop the first ``<|im_start|>``)."""
    from pathlib import Path

    import transformers as T

    d = Path(folder)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    tok = T.PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), eos_token=cfg.get("eos_token"),
                                    pad_token=cfg.get("pad_token"), unk_token=cfg.get("unk_token"))
    tpl = d / "chat_template.jinja"
    tok.chat_template = tpl.read_text() if tpl.exists() else cfg.get("chat_template")
    return tok


def _cache_len(cache) -> int | None:
    """How many positions nanoGCG's prefix cache holds after the run (it should still be the prefix only)."""
    if cache is None:
        return None
    try:
        return int(cache[0][0].shape[-2])
    except Exception:
        return None


if __name__ == "__main__":
    main()
