"""Whole-layer importance from how much a layer changes the residual stream.

- Block Influence (ShortGPT, Men et al. 2024, https://arxiv.org/abs/2403.03853): ``1 - E[cos(x_in, x_out)]``
  over calibration tokens, ``x_in`` / ``x_out`` the hidden states entering and leaving the layer;
- angular distance (Gromov et al. 2024, https://arxiv.org/abs/2403.17887): ``arccos(cos) / pi`` of the same pair
  (``span`` > 1 compares a layer's input with the output ``span`` layers later, for dropping blocks of layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError


@dataclass
class BlockInfluence:
    """``score(model, batches) -> {"layers": tensor[L]}`` (higher = the layer matters more)."""

    angular: bool = False
    span: int = 1
    needs_data = True

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        from ...models.anatomy import detect

        blocks = detect(model).blocks
        L = len(blocks)
        if not 1 <= self.span <= L:
            raise ShoestringError(f"span {self.span} is outside 1..{L}", "compare at most all layers")
        ins, outs = {}, {}  # the residual stream entering and leaving each block (before any final norm)

        def pre(i):
            def fn(_m, args, kwargs):
                ins[i] = (args[0] if args else kwargs["hidden_states"]).float()
            return fn

        def post(i):
            def fn(_m, _args, output):
                outs[i] = (output[0] if isinstance(output, tuple) else output).float()
            return fn
        handles = [b.register_forward_pre_hook(pre(i), with_kwargs=True) for i, b in enumerate(blocks)]
        handles += [b.register_forward_hook(post(i)) for i, b in enumerate(blocks)]
        total, n = torch.zeros(L - self.span + 1), 0
        try:
            for ids in batches:
                model(input_ids=ids)
                for i in range(L - self.span + 1):
                    total[i] += torch.nn.functional.cosine_similarity(ins[i], outs[i + self.span - 1], dim=-1).sum()
                n += ids.numel()
        finally:
            for h in handles:
                h.remove()
        if not n:
            raise ShoestringError("block influence needs calibration text, and none was given", "pass calibration batches")
        mean = (total / n).clamp(-1, 1)
        return {"layers": torch.arccos(mean) / torch.pi if self.angular else 1 - mean}


def layers_to_drop(scores: dict, n: int) -> list[int]:
    """The ``n`` least influential layers (for ``span`` > 1: the start of the least influential block)."""
    s = torch.as_tensor(scores["layers"])
    if not 0 < n < len(s):
        raise ShoestringError(f"cannot drop {n} of {len(s)} layers", f"drop between 1 and {len(s) - 1}")
    return sorted(s.argsort()[:n].tolist())
