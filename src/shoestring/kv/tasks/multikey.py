"""Multi-key retrieval (RULER's ``niah_multikey``, Hsieh et al. 2024, "RULER: What's the Real Context Size of
Your Long-Context Language Models?", https://arxiv.org/abs/2404.06654), built from offline prose: ``keys``
needles "The special magic number for <word> is <number>." sit at spread-out depths, one of them (at the
asked ``depth``) is the one asked for; the others are distractors a policy must not confuse with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from .passkey import check_depth, filler_ids, first_number

NEEDLE = " The special magic number for {word} is {num}."
QUESTION = "\n\nWhat is the special magic number for {word} mentioned in the text above? The special magic number for {word} is"
WORDS = ["apple", "river", "candle", "falcon", "marble", "violin", "harbor", "meadow", "lantern", "copper", "orchid",
         "glacier", "saddle", "thimble", "walnut", "compass"]


@dataclass
class MultikeyCase:
    ids: torch.Tensor  # [1, T]
    key: str  # the number asked for
    length: int
    depth: float
    word: str


def multikey_cases(tokenizer, filler: str, lengths: list[int], depths: list[float], keys: int = 4,
                   seed: int = 0) -> list[MultikeyCase]:
    """One case per (length, depth): ``keys`` needles, the asked one at ``depth``, the distractors at
    random depths (seeded)."""
    if not 1 <= keys <= len(WORDS):
        raise ShoestringError(f"{keys} keys per prompt", f"give between 1 and {len(WORDS)}")
    rng = random.Random(seed)
    fill = filler_ids(tokenizer, filler)
    cases = []
    for length in lengths:
        for depth in depths:
            check_depth(depth)
            words = rng.sample(WORDS, keys)
            nums = [str(rng.randint(1_000_000, 9_999_999)) for _ in words]
            needles = [tokenizer(NEEDLE.format(word=w, num=n), add_special_tokens=False)["input_ids"]
                       for w, n in zip(words, nums)]
            q = tokenizer(QUESTION.format(word=words[0]), add_special_tokens=False)["input_ids"]
            n_fill = length - sum(map(len, needles)) - len(q)
            if n_fill < 1 or n_fill > len(fill):
                raise ShoestringError(f"a {length}-token multi-key prompt needs {n_fill} filler tokens (the text has {len(fill)})",
                                      "use a longer filler corpus or shorter lengths")
            start = rng.randint(0, len(fill) - n_fill)
            body = fill[start:start + n_fill]
            cuts = [int(round(depth * n_fill))] + [rng.randint(0, n_fill) for _ in needles[1:]]
            ids: list[int] = []
            last = 0
            for cut, needle in sorted(zip(cuts, needles), key=lambda x: x[0]):
                ids += body[last:cut] + needle
                last = cut
            ids += body[last:] + q
            cases.append(MultikeyCase(torch.tensor([ids]), nums[0], length, depth, words[0]))
    return cases


def score_multikey(text: str, key: str) -> float:
    """1 if the first number in the answer is the asked key."""
    return float(first_number(text) == key)
