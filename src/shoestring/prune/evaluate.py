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
def nll_and_accuracy(model, data: list[torch.Tensor]) -> tuple[float, float]:
    """``(mean next-token NLL, next-token top-1 accuracy)`` over every predicted token of ``data``."""
    total, right, count = 0.0, 0, 0
    for ids in data:
        logits = model(input_ids=ids).logits[:, :-1].float()
        target = ids[:, 1:]
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                         reduction="sum"))
        right += int((logits.argmax(-1) == target).sum())
        count += target.numel()
    return total / count, right / count


def perplexity(model, data: list[torch.Tensor]) -> float:
    """exp(mean next-token NLL) over every predicted token of ``data``."""
    return math.exp(nll_and_accuracy(model, data)[0])


def domain_scores(model, held_out: dict[str, list[torch.Tensor]]) -> dict[str, dict[str, float]]:
    """``{"perplexity": {domain: ...}, "accuracy": {domain: ...}}`` on each domain's held-out batches."""
    out = {"perplexity": {}, "accuracy": {}}
    for name, data in held_out.items():
        nll, acc = nll_and_accuracy(model, data)
        out["perplexity"][name], out["accuracy"][name] = math.exp(nll), acc
    return out


def domain_perplexities(model, held_out: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """``{domain: perplexity}`` on each domain's held-out batches."""
    return domain_scores(model, held_out)["perplexity"]
