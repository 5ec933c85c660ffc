"""Sentiment with VADER (Hutto & Gilbert 2014, "VADER: A Parsimonious Rule-based Model for Sentiment
Analysis of Social Media Text", https://ojs.aaai.org/index.php/ICWSM/article/view/14550): the compound
score in [-1, 1], offline (the lexicon ships with the ``vaderSentiment`` package)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Judge


@dataclass
class Sentiment(Judge):
    name = "sentiment"
    higher_is = "more positive"

    def score(self, outputs, prompts=None):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyzer = _analyzer(SentimentIntensityAnalyzer)
        return [analyzer.polarity_scores(t)["compound"] for t in outputs]


_CACHE: dict = {}


def _analyzer(cls):
    if "vader" not in _CACHE:
        _CACHE["vader"] = cls()
    return _CACHE["vader"]
