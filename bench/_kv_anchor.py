"""The kvpress side of ``bench/kv.py``, run in kvpress's own venv (``bench/_kv_venv.py``: kvpress 0.5.2 on
transformers 4.57.6), as a server that ``bench/kv.py`` drives call by call, so its timed calls are
interleaved with ours in the same rounds (one process computes at a time; the other waits on a pipe).

    python bench/_kv_anchor.py --job job.json

``job.json``: ``model`` (a folder plain ``from_pretrained`` loads), ``threads``, ``contexts`` and
``continuations`` (token ids, lists of lists; the NLL check), ``time_context``, ``time_question`` (token
ids; the timed run), ``max_new_tokens``. Every token id comes from the caller, so tokenisation cannot differ.

A press is given as ``{"name": "snapkv" | "tova" | "streaming" | "key_norm" | "random" | "full", "ratio": r,
"seed": int | None, "global_seed": int | None}`` and built with kvpress's defaults (SnapKV window 64,
kernel 5; StreamingLLM 4 sinks); ``full`` is no press. ``global_seed`` seeds torch's global generator before
the prefill (``RandomPress(seed=None)`` draws from it).

Protocol: one JSON object per line on stdin, one JSON reply per line on the original stdout (anything the
libraries print goes to stderr). Requests:

- ``{"op": "info"}``: versions, threads, how the model was loaded;
- ``{"op": "nll", "press": {...}, "context": i, "path": FILE}``: the press around ``model.model(context)``
  (kvpress's prefill), then one forward of the continuation on the compressed cache at the next positions
  (as the pipeline feeds a question); reply the mean NLL of continuation tokens 1.. and the kept tokens per
  layer; write the kept indices ``[layers, kv_heads, kept]`` to ``FILE`` (safetensors), read from the
  scores the press computes (its ``score`` is wrapped; the top-k of ``int(T * (1 - ratio))`` is checked
  against the keys really left in the cache);
- ``{"op": "time", "press": {...}}``: kvpress's normal use, once: ``KVPressTextGenerationPipeline.forward``
  on the pre-tokenised ``time_context`` / ``time_question`` (press around the context prefill, then the
  question and greedy decoding of ``max_new_tokens`` as ``generate_answer`` does); reply ``{"s": seconds}``
  (wall clock around that call), the new token ids, and the cache bytes and tokens per layer after compression;
- ``{"op": "quit"}``.

An exception in a request is replied as ``{"error": "..."}``; the server then carries on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from importlib.metadata import version

import torch
import torch.nn.functional as F
import transformers as T
from safetensors.torch import save_file
from transformers import DynamicCache

from _steer_anchor import serve, start  # same loading (and the same RoPE-base fix for transformers 4.x)


def make_press(spec: dict):
    """The kvpress press of ``spec`` (``None`` for ``full``), kvpress's own defaults otherwise."""
    import kvpress

    r, name = float(spec.get("ratio", 0.0)), spec["name"]
    if name == "full":
        return None
    if name == "random":
        return kvpress.RandomPress(compression_ratio=r, seed=spec.get("seed"))
    cls = {"snapkv": kvpress.SnapKVPress, "tova": kvpress.TOVAPress, "streaming": kvpress.StreamingLLMPress,
           "key_norm": kvpress.KnormPress}[name]
    return cls(compression_ratio=r)


def record_kept(press, kept: dict):
    """Wrap ``press.score`` so that each layer's top-k (what ``ScorerPress.compress`` keeps) and the keys it
    saw land in ``kept[layer]``."""
    score = press.score

    def wrapped(module, hidden_states, keys, values, attentions, kwargs):
        s = score(module, hidden_states, keys, values, attentions, kwargs)
        n = int(keys.shape[2] * (1 - press.compression_ratio))
        kept[module.layer_idx] = (s.topk(n, dim=-1).indices, keys)
        return s

    press.score = wrapped


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", required=True)
    a = ap.parse_args()
    proto, job, model, fixes = start(a.job)

    from kvpress import KVPressTextGenerationPipeline

    # transformers 4.x cannot read the tokenizer_config that transformers 5 writes; tokenizer.json is enough
    # for the pipeline (it only decodes the answer: every input here is token ids)
    tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(job["model"], "tokenizer.json"))
    pipe = KVPressTextGenerationPipeline(model=model, tokenizer=tok)
    answer_ids: list[list[int]] = []
    decode = tok.decode

    def decode_and_record(ids, *args, **kwargs):  # generate_answer decodes its ids once: keep them
        answer_ids.append([int(x) for x in ids])
        return decode(ids, *args, **kwargs)

    tok.decode = decode_and_record
    contexts = [torch.tensor([c]) for c in job["contexts"]]
    conts = [torch.tensor([c]) for c in job["continuations"]]
    n_new = int(job["max_new_tokens"])

    def nll(spec: dict, i: int, path: str) -> dict:
        ctx, cont = contexts[i], conts[i]
        T_, m = ctx.shape[1], cont.shape[1]
        press, kept = make_press(spec), {}
        if press is not None:
            record_kept(press, kept)
        if spec.get("global_seed") is not None:
            torch.manual_seed(int(spec["global_seed"]))
        cache = DynamicCache()
        with torch.no_grad():
            with press(model) if press is not None else contextlib.nullcontext():
                model.model(input_ids=ctx, past_key_values=cache)
            held = [int(layer.keys.shape[-2]) for layer in cache.layers]
            verified = None
            if kept:
                verified = all(torch.equal(cache.layers[j].keys,
                                           k.gather(2, idx[..., None].expand(-1, -1, -1, k.shape[-1])))
                               for j, (idx, k) in kept.items()) and len(kept) == len(cache.layers)
                save_file({"kept": torch.stack([kept[j][0][0] for j in sorted(kept)]).contiguous()}, path)
            out = model(input_ids=cont, past_key_values=cache, position_ids=torch.arange(T_, T_ + m)[None])
            loss = F.cross_entropy(out.logits[0, :-1].float(), cont[0, 1:])
        return {"nll": float(loss), "cache_tokens": held, "indices_verified": verified,
                "path": path if kept else None}

    def timed(spec: dict) -> dict:
        press = make_press(spec)
        cache = DynamicCache()
        answer_ids.clear()
        inputs = {"context_ids": torch.tensor([job["time_context"]]), "questions_ids": [torch.tensor([job["time_question"]])]}
        t0 = time.perf_counter()
        pipe.forward(inputs, press=press, max_new_tokens=n_new, cache=cache)
        s = time.perf_counter() - t0
        # the pipeline trims the answer off the cache afterwards: what is left is the compressed context
        return {"s": s, "new_ids": answer_ids[-1], "cache_bytes": cache_bytes(cache),
                "cache_tokens": [int(layer.keys.shape[-2]) for layer in cache.layers]}

    def info() -> dict:
        return {"kvpress": version("kvpress"), "torch": torch.__version__, "transformers": T.__version__,
                "threads": torch.get_num_threads(), "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "load_fixes": fixes, "pid": os.getpid()}

    serve(proto, {"nll": lambda req: nll(req["press"], int(req["context"]), req["path"]),
                  "time": lambda req: timed(req["press"]), "info": lambda req: info()})

if __name__ == "__main__":
    main()
