"""Standard benchmarks on a model in memory through EleutherAI's lm-evaluation-harness (``lm-eval``), so a pruned
(or recovered) model is scored without saving it first.

The model is wrapped in lm-eval's ``HFLM`` and run with ``simple_evaluate`` (Gao et al., "A framework for few-shot
language model evaluation", https://github.com/EleutherAI/lm-evaluation-harness; Biderman et al. 2024,
https://arxiv.org/abs/2405.14782). Tasks are lm-eval's own or YAML files in ``include_path``; a local task whose
``dataset_path: json`` points at a JSON-lines file runs offline. Pruned models with per-layer widths work: lm-eval
only calls the model's forward.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

from ..errors import ShoestringError, nearest

OFFLINE_FIX = ("download the dataset once with network (HF_DATASETS_OFFLINE unset), or pass --lm-eval-include a "
               "folder with a local task YAML (dataset_path: json, dataset_kwargs: {data_files: ...})")


def _lm_eval():
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise ShoestringError(f"benchmarks need lm-evaluation-harness ({err})",
                              "pip install 'lm-eval[hf]>=0.4.13' (or shoestring's 'prune' extra)") from None
    return lm_eval, HFLM, TaskManager


@functools.lru_cache(maxsize=4)
def _manager(TaskManager, paths: tuple, defaults: bool):
    """One index per folder set and process (a second evaluation, e.g. after pruning, reuses it)."""
    return TaskManager(verbosity="ERROR", include_path=list(paths) or None, include_defaults=defaults)


def _task_manager(TaskManager, tasks: list[str], include_path):
    """Local tasks alone when ``include_path`` holds every name (indexing lm-eval's thousands of YAMLs takes tens
    of seconds); else lm-eval's tasks too. Unknown names are one clear line."""
    paths = [str(p) for p in ([include_path] if isinstance(include_path, (str, Path)) else include_path or [])]
    for p in paths:
        if not Path(p).exists():
            raise ShoestringError(f"the lm-eval include path {p} does not exist", "pass a folder of task YAML files")
    named = [t for t in tasks if not Path(t).is_file()]  # a YAML path is a task too
    if paths:
        local = _manager(TaskManager, tuple(paths), False)
        if set(named) <= set(local.all_tasks):
            return local
    tm = _manager(TaskManager, tuple(paths), True)
    for t in named:
        if t not in tm.all_tasks:
            close = nearest(t, tm.all_tasks)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ShoestringError(f"lm-eval has no task '{t}'{hint}",
                                  "see `lm-eval ls tasks` for the names, or pass --lm-eval-include a folder of YAML")
    return tm


def _top_level(loaded: dict, tasks: list[str]) -> list:
    """The loaded groups asked for, and every task not inside one of them (tags expand to their tasks)."""
    groups = [g for name, g in loaded["groups"].items() if name in tasks]
    inside = {t.task_name for g in groups for t in g.get_all_tasks()}
    return groups + [t for name, t in loaded["tasks"].items() if name not in inside]


def _metrics(row: dict) -> dict[str, float]:
    """``{"acc,none": .5, "acc_stderr,none": .1, "alias": ...}`` -> ``{"acc": .5, "acc_stderr": .1}``."""
    out = {}
    for key, value in row.items():
        if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # name, alias, sample_len; a stderr of "N/A"
        metric, filt = key.split(",", 1)
        out[metric if filt == "none" else key] = float(value)
    return out


def lm_eval_tasks(model, tokenizer, tasks: list[str], limit: int | float | None = None, batch_size: int | str = 8,
                  include_path=None, num_fewshot: int | None = None) -> dict[str, dict[str, float]]:
    """Run lm-eval ``tasks`` on ``model`` in memory; returns ``{task: {metric: value}}``.

    Parameters
    ----------
    model
        A transformers causal LM (pruned, recovered, merged: anything with a forward), on its own device.
    tokenizer
        Its tokenizer.
    tasks
        lm-eval task, group or tag names (``hellaswag``, ``arc_easy``, ``mmlu``), or paths of task YAML files.
    limit
        Examples per task (an int) or a share of them (a float below 1); ``None``: all. A limit is for quick
        looks: lm-eval warns that limited scores are not comparable to published ones.
    batch_size
        Requests per forward, or ``"auto"``.
    include_path
        A folder (or list of folders) of extra task YAML files.
    num_fewshot
        Few-shot examples per prompt; ``None``: each task's default (0 where it names none).

    Returns
    -------
    dict
        Per task (and per group asked for), its metrics: ``acc``, ``acc_norm``, ``acc_stderr``, ... (a metric
        under a filter other than ``none`` keeps the filter: ``exact_match,strict-match``).

    Raises
    ------
    ShoestringError
        lm-eval is not installed, a task is unknown, or its data cannot be had (offline, no local copy).

    Notes
    -----
    The caller's random states (python, numpy, torch) are restored afterwards: lm-eval seeds all three.
    """
    import numpy as np
    import torch

    lm_eval, HFLM, TaskManager = _lm_eval()
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ShoestringError("no lm-eval tasks given", "name at least one, e.g. --lm-eval arc_easy,hellaswag")
    tm = _task_manager(TaskManager, tasks, include_path)
    try:
        loaded = tm.load(tasks)
    except OSError as err:  # datasets' DatasetNotFoundError, huggingface_hub's OfflineModeIsEnabled, a missing file
        raise ShoestringError(f"the data of lm-eval task(s) {', '.join(tasks)} is not available ({err})",
                              OFFLINE_FIX) from None
    was_training = model.training
    py_state, np_state = random.getstate(), np.random.get_state()
    device = next(model.parameters()).device
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size)
            out = lm_eval.simple_evaluate(model=lm, tasks=_top_level(loaded, tasks), task_manager=tm, limit=limit,
                                          num_fewshot=num_fewshot, log_samples=False, verbosity="ERROR")
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        model.train(was_training)
    return {name: _metrics(row) for name, row in out["results"].items()}
