"""Passkey retrieval (Mohtashami & Jaggi 2023, "Landmark Attention", https://arxiv.org/abs/2305.16300): a
random 5-digit key is stated once inside filler text at a chosen depth; at the end the model is asked for
it. The filler is real prose from an offline corpus (not one repeated sentence), cut to the exact token
length, so every policy sees the same prompts for a given seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from ...errors import ShoestringError

NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"
# The original test's filler: the needle is the only new information (Mohtashami & Jaggi 2023). Real prose
# (a corpus) is the harder variant: SmolLM2-135M with a full cache finds the key in it only now and then.
STANDARD_FILLER = " ".join(["The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."] * 800)


@dataclass
class PasskeyCase:
    ids: torch.Tensor  # [1, T]
    key: str
    length: int
    depth: float


def passkey_cases(tokenizer, filler: str, lengths: list[int], depths: list[float], seed: int = 0) -> list[PasskeyCase]:
    """One case per (length, depth): ``length`` tokens in all, the needle at ``depth`` (0 = start, 1 = end)
    of the filler."""
    rng = random.Random(seed)
    fill = filler_ids(tokenizer, filler)
    q = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
    cases = []
    for length in lengths:
        for depth in depths:
            check_depth(depth)
            key = str(rng.randint(10_000, 99_999))
            needle = tokenizer(NEEDLE.format(key=key), add_special_tokens=False)["input_ids"]
            n_fill = length - len(needle) - len(q)
            if n_fill < 1 or n_fill > len(fill):
                raise ShoestringError(f"a {length}-token passkey prompt needs {n_fill} filler tokens (the text has {len(fill)})",
                                      "use a longer filler corpus or shorter lengths")
            start = rng.randint(0, len(fill) - n_fill)
            body = fill[start:start + n_fill]
            cut = int(round(depth * n_fill))
            ids = body[:cut] + needle + body[cut:] + q
            cases.append(PasskeyCase(torch.tensor([ids]), key, length, depth))
    return cases


def check_depth(depth: float) -> None:
    if not 0.0 <= depth <= 1.0:
        raise ShoestringError(f"depth {depth} is outside 0..1", "give depths as fractions, e.g. 0, 0.5, 1")


def filler_ids(tokenizer, filler: str) -> list[int]:
    return tokenizer(filler, add_special_tokens=False)["input_ids"]


def first_number(text: str) -> str | None:
    m = re.search(r"\d+", text)
    return m.group(0) if m else None


def score_passkey(text: str, key: str) -> float:
    """1 if the first number in the answer is the key."""
    return float(first_number(text) == key)
