"""Quality and speed of an inference-time intervention measured the way it is used: token by token with the KV
cache. Each held-out context is prefilled for ``prefix`` tokens, then the true next tokens are fed one at a time
(teacher forcing), so the NLL, the top-1 accuracy and the agreement with the unmodified model's greedy choice are
measured on exactly the decode steps the intervention changes, and the decode steps are timed."""

from __future__ import annotations

import contextlib
import math
import time

import torch

from ..errors import ShoestringError


@torch.no_grad()
def decode_eval(model, contexts: torch.Tensor, prefix: int, intervention=None, reference=None) -> dict:
    """Teacher-forced decode over ``contexts`` [N, T] after a ``prefix``-token prefill.

    Parameters
    ----------
    intervention
        A context manager (``SkipLayers``, ``EarlyExit``, ...) active during the whole loop, or ``None``.
    reference
        ``[N, T - prefix]`` greedy tokens of the unmodified model at each step (from a run without
        intervention, returned as ``"argmax"``): the agreement with them is reported.
    """
    N, T = contexts.shape
    if not 1 <= prefix < T - 1:
        raise ShoestringError(f"a prefix of {prefix} tokens leaves nothing to decode in contexts of {T}",
                              "use a prefix between 1 and the context length - 2")
    model.eval()
    nll, right, agree, count, seconds = 0.0, 0, 0, 0, 0.0
    argmax = torch.empty(N, T - prefix, dtype=torch.long)
    with intervention if intervention is not None else contextlib.nullcontext():
        for n in range(N):
            ids = contexts[n : n + 1]
            out = model(input_ids=ids[:, :prefix], use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1]
            for t in range(prefix, T):
                target = ids[:, t]
                logp = logits.float().log_softmax(-1)
                nll -= float(logp[0, target])
                argmax[n, t - prefix] = logits.argmax(-1)
                right += int(argmax[n, t - prefix] == target)
                if reference is not None:
                    agree += int(argmax[n, t - prefix] == reference[n, t - prefix])
                count += 1
                if t == T - 1:
                    break
                t0 = time.perf_counter()
                out = model(input_ids=ids[:, t : t + 1], past_key_values=cache, use_cache=True)
                seconds += time.perf_counter() - t0
                cache, logits = out.past_key_values, out.logits[:, -1]
    steps = N * (T - prefix - 1)
    res = {"perplexity": math.exp(nll / count), "accuracy": right / count, "tokens": count,
           "decode_tokens_per_s": steps / seconds if seconds else None, "argmax": argmax}
    if reference is not None:
        res["agreement"] = agree / count
    if hasattr(intervention, "summary"):
        res.update(intervention.summary())
    return res
