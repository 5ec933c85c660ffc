"""Fluency as perplexity of the output under a reference model (the *unsteered* model: call it outside any
steering context), conditioned on the prompt. Lower is more fluent; the judge reports ``-log(ppl)`` so
that higher is better like every other judge, and :meth:`Perplexity.perplexities` gives the raw values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .base import Judge


@dataclass
class Perplexity(Judge):
    lm: object = field(default=None, repr=False)
    batch_size: int = 8
    name = "fluency"
    higher_is = "more fluent (-log perplexity)"

    def perplexities(self, outputs, prompts=None) -> list[float]:
        nll = self.mean_nll(outputs, prompts)
        return [math.exp(min(v, 50.0)) for v in nll]

    @torch.no_grad()
    def mean_nll(self, outputs, prompts=None) -> list[float]:
        tok = self.lm.tokenizer
        prompts = prompts or [""] * len(outputs)
        out = []
        for a in range(0, len(outputs), self.batch_size):
            rows, spans = [], []
            for p, o in zip(prompts[a:a + self.batch_size], outputs[a:a + self.batch_size]):
                p_ids = tok(p)["input_ids"] if p else [tok.bos_token_id] if tok.bos_token_id is not None else []
                o_ids = tok(o, add_special_tokens=False)["input_ids"]
                rows.append(p_ids + o_ids)
                spans.append((len(p_ids), len(p_ids) + len(o_ids)))
            width = max(len(r) for r in rows)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.lm.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.lm.device)
            logp = F.log_softmax(self.lm.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for i, (s, e) in enumerate(spans):
                if e - s < 1 or s < 1:
                    out.append(float("nan"))
                    continue
                target = ids[i, s:e]
                out.append(float(-logp[i, s - 1:e - 1].gather(-1, target[:, None]).mean()))
        return out

    def score(self, outputs, prompts=None):
        return [-v for v in self.mean_nll(outputs, prompts)]
