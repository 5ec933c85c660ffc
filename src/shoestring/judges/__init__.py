"""Judges, one file each, in a registry: ``JUDGES[name]`` is the class (a duplicate name raises).

>>> from shoestring.judges import make_judge
>>> make_judge("sentiment")(["What a wonderful day!", "This is awful."])  # doctest: +SKIP
[0.6114, -0.4588]
"""

from __future__ import annotations

from ..errors import ShoestringError, nearest
from ..registry import add
from .base import Judge
from .llm import LLMJudge
from .logprob import TargetLogProb
from .perplexity import Perplexity
from .sentiment import Sentiment
from .target_match import TargetMatch
from .text_match import REFUSAL_PHRASES, ExactMatch, Refusal, Regex

JUDGES: dict[str, type[Judge]] = {}
for _cls in (Sentiment, Perplexity, TargetLogProb, Refusal, Regex, ExactMatch, LLMJudge, TargetMatch):
    add(JUDGES, _cls.name, _cls, "judge")


def make_judge(name: str, **settings) -> Judge:
    """A judge by registry name, e.g. ``make_judge("fluency", lm=lm)``; an unknown name is one clear error."""
    if name not in JUDGES:
        hint = nearest(name, JUDGES)
        raise ShoestringError(f"unknown judge '{name}'", f"use one of {', '.join(JUDGES)}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    try:
        return JUDGES[name](**settings)
    except TypeError as e:
        raise ShoestringError(f"bad settings for judge '{name}' ({e})", f"see help(shoestring.judges.{JUDGES[name].__name__})")


__all__ = ["JUDGES", "Judge", "make_judge", "Sentiment", "Perplexity", "TargetLogProb", "Refusal", "Regex",
           "ExactMatch", "LLMJudge", "TargetMatch", "REFUSAL_PHRASES"]
