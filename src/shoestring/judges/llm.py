"""An LLM judge with a rubric, where the user provides the judging model (any ``shoestring.LM``).

The judge asks the model the rubric's question about each output and reads the probability of " Yes"
against " No" from the next-token distribution (no sampling, no parsing): a score in [0, 1]. As with any
single judge, compare it with others (Zheng et al. 2023, "Judging LLM-as-a-Judge",
https://arxiv.org/abs/2306.05685)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError
from .base import Judge

RUBRIC = "Is the following text {criterion}? Answer Yes or No.\n\nText: {output}\n\nAnswer:"


@dataclass
class LLMJudge(Judge):
    lm: object = field(default=None, repr=False)
    criterion: str = "positive in sentiment"
    rubric: str = RUBRIC
    yes: str = " Yes"
    no: str = " No"
    name = "llm"
    higher_is = "P(yes)"

    @torch.no_grad()
    def score(self, outputs, prompts=None):
        if self.lm is None:
            raise ShoestringError("the LLM judge needs a model", "pass lm=shoestring.load(...) (any chat or base model)")
        tok = self.lm.tokenizer
        y, n = (tok(w, add_special_tokens=False)["input_ids"][0] for w in (self.yes, self.no))
        out = []
        for o in outputs:
            text = self.rubric.format(criterion=self.criterion, output=o)
            logits = self.lm.forward([text])[0, -1].float()
            out.append(float(torch.softmax(logits[[y, n]], -1)[0]))
        return out
