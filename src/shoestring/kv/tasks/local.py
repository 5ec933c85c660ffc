"""LongBench and RULER from files the user already has (nothing is downloaded): JSON-lines files in each
benchmark's released format, turned into prompts and scored with each benchmark's metric.

- LongBench (Bai et al. 2023, https://arxiv.org/abs/2308.14508): rows with ``context``, ``input`` (the
  question), ``answers`` (a list); scored with token F1 against the best answer (its QA metric).
- RULER (Hsieh et al. 2024, https://arxiv.org/abs/2404.06654): rows with ``input`` (the whole prompt) and
  ``outputs`` (a list); scored as the fraction of outputs found in the answer (its ``string_match_all``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import ShoestringError

LONGBENCH_TEMPLATE = "{context}\n\nAnswer the question based on the text above.\nQuestion: {input}\nAnswer:"


@dataclass
class TextCase:
    ids: torch.Tensor  # [1, T]
    answers: list[str]
    length: int
    metric: str  # "f1" or "contains"


def _rows(path) -> list[dict]:
    from ...data.tables import json_lines

    path = Path(path)
    if not path.is_file():
        raise ShoestringError(f"no such file: {path}", "give the path of a local .jsonl file of the benchmark")
    return [row for _, row in json_lines(path)]


def _need(row: dict, keys: tuple[str, ...], path, n: int) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ShoestringError(f"{path} row {n} has no {', '.join(missing)}", f"rows need the fields {', '.join(keys)}")


def _encode(tokenizer, text: str, max_tokens: int | None) -> torch.Tensor:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_tokens and len(ids) > max_tokens:  # LongBench's rule: keep the head and the tail
        half = max_tokens // 2
        ids = ids[:half] + ids[len(ids) - (max_tokens - half):]
    return torch.tensor([ids])


def load_longbench(path, tokenizer, max_tokens: int | None = None, limit: int | None = None) -> list[TextCase]:
    """Cases from a LongBench ``<task>.jsonl``; prompts longer than ``max_tokens`` keep head and tail."""
    cases = []
    for n, row in enumerate(_rows(path)[:limit], 1):
        _need(row, ("context", "input", "answers"), path, n)
        ids = _encode(tokenizer, LONGBENCH_TEMPLATE.format(context=row["context"], input=row["input"]), max_tokens)
        cases.append(TextCase(ids, [str(a) for a in row["answers"]], ids.shape[1], "f1"))
    return cases


def load_ruler(path, tokenizer, max_tokens: int | None = None, limit: int | None = None) -> list[TextCase]:
    """Cases from a RULER ``validation.jsonl`` (rows with ``input`` and ``outputs``)."""
    cases = []
    for n, row in enumerate(_rows(path)[:limit], 1):
        _need(row, ("input", "outputs"), path, n)
        ids = _encode(tokenizer, row["input"], max_tokens)
        cases.append(TextCase(ids, [str(a) for a in row["outputs"]], ids.shape[1], "contains"))
    return cases


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


def token_f1(prediction: str, answer: str) -> float:
    p, a = _words(prediction), _words(answer)
    same = sum((Counter(p) & Counter(a)).values())
    if not same:
        return 0.0
    precision, recall = same / len(p), same / len(a)
    return 2 * precision * recall / (precision + recall)


def score_text(prediction: str, case: TextCase) -> float:
    if case.metric == "f1":
        return max(token_f1(prediction, a) for a in case.answers)
    return sum(a.lower() in prediction.lower() for a in case.answers) / len(case.answers)
