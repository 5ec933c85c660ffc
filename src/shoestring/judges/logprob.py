"""Log-probability the model gives to target continuations after each prompt (e.g. " good" vs " bad"):
the summed log-probability of each target's tokens, max over targets."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ShoestringError
from .base import Judge


@dataclass
class TargetLogProb(Judge):
    lm: object = field(default=None, repr=False)
    targets: tuple[str, ...] = ()
    name = "logprob"
    under_intervention = True  # in the loop: the steered model's log-probabilities
    higher_is = "more likely targets"

    @torch.no_grad()
    def score(self, outputs, prompts=None):
        if not self.targets:
            raise ShoestringError("the logprob judge has no targets", "give targets, e.g. [' good', ' great']")
        tok = self.lm.tokenizer
        contexts = prompts or outputs
        out = []
        for ctx in contexts:
            best = float("-inf")
            c_ids = tok(ctx)["input_ids"]
            for t in self.targets:
                t_ids = tok(t, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([c_ids + t_ids], device=self.lm.device)
                logp = F.log_softmax(self.lm.model(input_ids=ids).logits[0].float(), -1)
                lp = sum(float(logp[len(c_ids) - 1 + j, tid]) for j, tid in enumerate(t_ids))
                best = max(best, lp)
            out.append(best)
        return out
