"""Long-text perplexity under a KV policy: the text streams through a :class:`KVSession` chunk by chunk and
every next token is scored with what the cache still holds (the StreamingLLM evaluation, Xiao et al. 2023,
https://arxiv.org/abs/2309.17453). Returns the per-token NLL so curves over position can be drawn."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .policies import Policy
from .session import KVSession


@torch.no_grad()
def stream_nll(lm, ids: torch.Tensor, policy: Policy, budget: int | None, chunk: int = 64) -> torch.Tensor:
    """``[T - 1]`` NLL of tokens ``1 .. T-1`` of ``ids [1, T]`` given the compressed cache before them."""
    s = KVSession(lm, policy, budget, chunk=chunk)
    nll = []
    for start in range(0, ids.shape[1], chunk):
        piece = ids[:, start:start + chunk]
        logits = s.step(piece).float()  # [1, n, vocab]
        targets = ids[:, start + 1:start + 1 + piece.shape[1]].to(logits.device)
        logp = F.log_softmax(logits[:, :targets.shape[1]], -1)
        nll.append(-logp.gather(-1, targets[..., None])[0, :, 0])
    return torch.cat(nll).cpu()
