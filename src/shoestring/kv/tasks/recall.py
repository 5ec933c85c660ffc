"""Extractive question answering built from offline prose: a sentence of the context (at the asked depth) is
quoted by its opening words and the model must continue it as the text did. The answer is in the context
and nowhere else (books the model may have memorised make this easier with or without a cache, equally for
every policy), and the score is token F1 of the continuation against the sentence's true next words
(the QA metric of LongBench, Bai et al. 2023, https://arxiv.org/abs/2308.14508).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from .local import token_f1
from .passkey import check_depth, filler_ids

QUESTION = "\n\nIn the text above, the sentence that begins \"{opening}\" goes on:"


@dataclass
class RecallCase:
    ids: torch.Tensor  # [1, T]
    answers: list[str]  # the sentence's next words
    length: int
    depth: float


def recall_cases(tokenizer, prose: str, lengths: list[int], depths: list[float], opening: int = 6, answer: int = 8,
                 seed: int = 0) -> list[RecallCase]:
    """One case per (length, depth): ``length`` tokens of ``prose``; the quoted sentence starts nearest
    ``depth``; its first ``opening`` words are quoted, the next ``answer`` words are the answer."""
    rng = random.Random(seed)
    fill = filler_ids(tokenizer, prose)
    cases = []
    for length in lengths:
        for depth in depths:
            check_depth(depth)
            q_max = len(tokenizer(QUESTION.format(opening=" ".join(["word"] * opening * 2)),
                                  add_special_tokens=False)["input_ids"])
            n_body = length - q_max
            if n_body < 64 or n_body > len(fill):
                raise ShoestringError(f"a {length}-token recall prompt needs {n_body} tokens of prose (the text has {len(fill)})",
                                      "use a longer corpus or lengths of at least 128 tokens")
            start = rng.randint(0, len(fill) - n_body)
            text = tokenizer.decode(fill[start:start + n_body])
            starts = [m.end() for m in re.finditer(r"[.!?]\s+(?=[A-Z])", text)]
            good = [s for s in starts if len(text[s:].split()) >= opening + answer + 2]
            if not good:
                raise ShoestringError(f"no sentence of {opening + answer} words in a {length}-token piece of prose",
                                      "use a prose corpus (books), not code")
            at = min(good, key=lambda s: abs(s / len(text) - depth))
            words = text[at:].split()
            ask, truth = " ".join(words[:opening]), " ".join(words[opening:opening + answer])
            q = tokenizer(QUESTION.format(opening=ask), add_special_tokens=False)["input_ids"]
            body = tokenizer(text, add_special_tokens=False)["input_ids"][:length - len(q)]
            cases.append(RecallCase(torch.tensor([body + q]), [truth], len(body) + len(q), depth))
    return cases


def score_recall(text: str, case: RecallCase) -> float:
    return max(token_f1(text, a) for a in case.answers)
