"""Calibration batches from the corpora, and held-out perplexity per domain (to show a pruned model became
specific: its task domain's perplexity should rise less than the others')."""

from __future__ import annotations

import math

import torch

from ..errors import ShoestringError


def batches(tokenizer, corpus: str, n: int, length: int, batch_size: int = 4, skip: int = 0) -> list[torch.Tensor]:
    """``n`` packed contexts of ``length`` tokens from ``corpus`` (after ``skip`` contexts), in batches."""
    from ..data import load_corpus
    from ..data.pack import take_contexts

    rows = take_contexts(load_corpus(corpus), tokenizer, length, n, skip_contexts=skip)
    if rows is None or len(rows) < min(n, batch_size):
        got = 0 if rows is None else len(rows)
        raise ShoestringError(f"corpus '{corpus}' gives {got} contexts of {length} tokens, fewer than one batch of "
                              f"{min(n, batch_size)}", "use a larger corpus or a shorter --length")
    return list(rows.split(batch_size))


@torch.no_grad()
def perplexity(model, data: list[torch.Tensor]) -> float:
    """exp(mean next-token NLL) over every predicted token of ``data``."""
    total, count = 0.0, 0
    for ids in data:
        logits = model(input_ids=ids).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                reduction="sum")
        total, count = total + float(nll), count + ids[:, 1:].numel()
    return math.exp(total / count)


def domain_perplexities(model, held_out: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """``{domain: perplexity}`` on each domain's held-out batches."""
    return {name: perplexity(model, data) for name, data in held_out.items()}
