"""ActAdd: the activation difference of one prompt pair, position by position ("Love" - "Hate"), added at
the first positions of the prompt (Turner et al. 2023, "Steering Language Models With Activation
Engineering", https://arxiv.org/abs/2308.10248).

The shorter prompt is padded with space tokens, as in the paper. The direction holds a sequence
``[n_pos, d_model]`` per layer; :class:`~shoestring.steer.apply.Steer` adds it at the prompt's first real
tokens (it knows the left padding when generation goes through :func:`~shoestring.steer.apply.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from ..direction import Direction


@dataclass
class ActAdd:
    layers: tuple[int, ...] = (6,)
    hook: str = "blocks.{layer}.hook_resid_pre"
    name = "actadd"

    def fit(self, lm, positive: str, negative: str) -> Direction:
        if not isinstance(positive, str) or not isinstance(negative, str) or not positive or not negative:
            raise ShoestringError("ActAdd takes one prompt on each side (two non-empty strings)", "e.g. positive='Love', negative='Hate'")
        tok = lm.tokenizer
        ids = [tok(t, return_tensors="pt")["input_ids"][0] for t in (positive, negative)]
        space = tok(" ", add_special_tokens=False)["input_ids"] or [tok.pad_token_id or 0]
        n = max(len(i) for i in ids)
        ids = [torch.cat([i, torch.tensor(space[-1:] * (n - len(i)), dtype=i.dtype)]) for i in ids]
        hooks = [self.hook.format(layer=layer) for layer in self.layers]
        _, acts = lm.run_with_cache(torch.stack(ids), hooks)
        vectors = {layer: (acts[h][0] - acts[h][1]).float().cpu() for layer, h in zip(self.layers, hooks)}
        return Direction(vectors, self.name, self.hook, getattr(lm, "name", ""),
                         {"positive": positive, "negative": negative, "n_pos": n})
