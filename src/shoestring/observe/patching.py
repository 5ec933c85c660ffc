"""Activation patching: run a corrupted prompt with one clean activation put back, and see what returns.

Based on Meng et al., "Locating and Editing Factual Associations in GPT" (causal tracing, 2022),
https://arxiv.org/abs/2202.05262 ; the metrics and their normalisation follow Heimersheim & Nanda,
"How to use and interpret activation patching" (2024), https://arxiv.org/abs/2404.15255 .

The score of a patch is ``(patched - corrupt) / (clean - corrupt)``: 1 means the clean behaviour is
fully restored, 0 means the patch did nothing. Many patches run in one batched forward pass (one
batch row per patch).

>>> lm = shoestring.load()  # doctest: +SKIP
>>> r = patch_residual(lm, "The Eiffel Tower is in the city of", "The Colosseum is in the city of",
...                    answer=" Paris", wrong=" Rome")  # doctest: +SKIP
>>> r.top(3)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShoestringError

HOOKS = {"resid_pre": "hook_resid_pre", "resid_post": "hook_resid_post",
         "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out"}
METRICS = ("logit_diff", "prob")


@dataclass
class PatchResult:
    """A grid of normalised patching scores.

    Attributes
    ----------
    grid
        ``[n_layers, n_pos]`` (residual patching) or ``[n_layers, n_heads]`` (head patching).
    clean, corrupt
        The metric on the clean and on the corrupted run (the 1 and the 0 of the scale).
    columns
        Column labels: the corrupted prompt's tokens (``"3:city"``) or head indices.
    hook, metric
        What was patched and what was measured.
    """

    grid: torch.Tensor
    clean: float
    corrupt: float
    columns: list[str]
    hook: str
    metric: str

    def top(self, k: int = 5) -> list[dict]:
        """The ``k`` cells with the largest score: ``{"layer", "column", "score"}``."""
        flat = self.grid.flatten()
        idx = flat.topk(min(k, flat.numel())).indices
        n = self.grid.shape[1]
        return [{"layer": int(i) // n, "column": self.columns[int(i) % n], "score": round(float(flat[i]), 4)}
                for i in idx]


# -- inputs -------------------------------------------------------------------------------------
def _ids(lm, prompt) -> torch.Tensor:
    """A prompt (text or token ids) -> ``[1, pos]`` ids on the model's device."""
    if isinstance(prompt, str):
        if lm.tokenizer is None:
            raise ShoestringError("this LM has no tokenizer", "pass token ids (a tensor) instead of text")
        return lm.tokenize(prompt)["input_ids"]
    ids = torch.as_tensor(prompt, device=lm.device).long()
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ShoestringError(f"a prompt must be one sequence, got shape {list(ids.shape)}", "pass one prompt at a time")
    return ids


def token_id(lm, token) -> int:
    """A single token (text such as ``" Paris"`` or an id) -> its id; several tokens raise."""
    if isinstance(token, int) or (isinstance(token, torch.Tensor) and token.numel() == 1):
        tid = int(token)
    elif isinstance(token, str):
        if lm.tokenizer is None:
            raise ShoestringError("this LM has no tokenizer", "pass the token id (an int) instead of text")
        ids = lm.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            pieces = [lm.tokenizer.decode([i]) for i in ids]
            raise ShoestringError(f"{token!r} is {len(ids)} tokens {pieces}, not one",
                                  f"use a single-token answer, e.g. {pieces[0]!r} (with its leading space)"
                                  if pieces else "use a single-token answer")
        tid = ids[0]
    else:
        raise ShoestringError(f"cannot read a token from {type(token).__name__}", "pass a string or an int id")
    if not 0 <= tid < lm.anatomy.d_vocab:
        raise ShoestringError(f"token id {tid} is out of range", f"the vocabulary has {lm.anatomy.d_vocab} tokens")
    return tid


def _metric_fn(metric: str, answer: int, wrong: int | None):
    if metric not in METRICS:
        raise ShoestringError(f"unknown metric '{metric}'", f"use one of {', '.join(METRICS)}")

    def fn(logits: torch.Tensor) -> torch.Tensor:  # [batch, d_vocab] at the last position
        x = logits.float().softmax(-1) if metric == "prob" else logits.float()
        return x[:, answer] - (x[:, wrong] if wrong is not None else 0.0)

    return fn


def _check_layer(lm, layer: int) -> int:
    if not -lm.n_layers <= layer < lm.n_layers:
        raise ShoestringError(f"layer {layer} is out of range", f"{lm.name} has {lm.n_layers} layers: use 0 to {lm.n_layers - 1}")
    return layer % lm.n_layers


def _check_pos(pos: int, n_pos: int) -> int:
    if not -n_pos <= pos < n_pos:
        raise ShoestringError(f"position {pos} is out of range for a {n_pos}-token prompt",
                              f"use 0 to {n_pos - 1}, or -1 for the last token")
    return pos % n_pos


# -- the engine -----------------------------------------------------------------------------------
class _Setup:
    """Tokenised pair, answer ids, metric, and the clean / corrupt baselines."""

    def __init__(self, lm, clean, corrupt, answer, wrong, metric):
        self.lm = lm
        self.clean_ids, self.corrupt_ids = _ids(lm, clean), _ids(lm, corrupt)
        nc, nx = self.clean_ids.shape[1], self.corrupt_ids.shape[1]
        if nc != nx:
            raise ShoestringError(f"clean prompt is {nc} tokens but corrupt prompt is {nx}",
                                  "patching aligns positions: reword one prompt so both have the same token count")
        self.n_pos = nc
        self.answer, self.wrong = token_id(lm, answer), (None if wrong is None else token_id(lm, wrong))
        self.metric_name = metric
        self.metric = _metric_fn(metric, self.answer, self.wrong)

    def baselines(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Run clean (keeping ``names``) and corrupt; set ``self.clean_m``/``self.corrupt_m``."""
        with self.lm.capture(names) as acts, torch.no_grad():
            clean_logits = self.lm.model(input_ids=self.clean_ids).logits[:, -1]
        with torch.no_grad():
            corrupt_logits = self.lm.model(input_ids=self.corrupt_ids).logits[:, -1]
        self.clean_m, self.corrupt_m = float(self.metric(clean_logits)[0]), float(self.metric(corrupt_logits)[0])
        if abs(self.clean_m - self.corrupt_m) <= 1e-6 * max(1.0, abs(self.clean_m)):
            raise ShoestringError(f"clean and corrupt give the same metric ({self.clean_m:.6g})",
                                  "the scores would divide by zero: choose a corrupt prompt that changes the answer")
        return {n: acts[n] for n in names}

    def run(self, jobs: list[tuple[str, object]], batch_size: int = 16) -> torch.Tensor:
        """Each job ``(hook_name, index)`` sets ``act[row][index] = clean[index]``; one row per job.

        ``clean`` must be held in ``self.clean_acts`` (activations without the batch axis).
        Returns the normalised score of each job.
        """
        scores = []
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            by_hook: dict[str, list[tuple[int, object]]] = {}
            for row, (name, index) in enumerate(chunk):
                by_hook.setdefault(name, []).append((row, index))
            edits = {name: self._patcher(name, rows) for name, rows in by_hook.items()}
            ids = self.corrupt_ids.expand(len(chunk), -1)
            with self.lm.edit(edits), torch.no_grad():
                logits = self.lm.model(input_ids=ids).logits[:, -1]
            scores.append(self.metric(logits))
        m = torch.cat(scores)
        return ((m - self.corrupt_m) / (self.clean_m - self.corrupt_m)).cpu()

    def _patcher(self, name: str, rows: list[tuple[int, object]]):
        clean = self.clean_acts[name]

        def fn(act):
            act = act.clone()
            for row, index in rows:
                act[row][index] = clean[index].to(act.dtype)
            return act

        return fn


def patch_residual(lm, clean, corrupt, answer, wrong=None, hook: str = "resid_pre", metric: str = "logit_diff",
                   batch_size: int = 16) -> PatchResult:
    """Patch one clean activation per (layer, position) into the corrupted run.

    Parameters
    ----------
    lm
        The :class:`shoestring.LM`.
    clean, corrupt
        Two prompts (text or token ids) of the same token length.
    answer, wrong
        Single tokens (text or id). ``logit_diff`` measures ``logit[answer] - logit[wrong]`` (or the
        answer's logit alone); ``prob`` the answer's probability (minus the wrong one's).
    hook
        ``"resid_pre"``, ``"resid_post"``, ``"attn_out"`` or ``"mlp_out"``.
    batch_size
        Patches per forward pass (one batch row each).

    Returns
    -------
    PatchResult
        ``grid[layer, pos]`` = ``(patched - corrupt) / (clean - corrupt)``.
    """
    if hook not in HOOKS:
        raise ShoestringError(f"unknown hook '{hook}'", f"use one of {', '.join(HOOKS)}")
    s = _Setup(lm, clean, corrupt, answer, wrong, metric)
    names = [f"blocks.{L}.{HOOKS[hook]}" for L in range(lm.n_layers)]
    s.clean_acts = {n: a[0] for n, a in s.baselines(names).items()}
    jobs = [(n, p) for n in names for p in range(s.n_pos)]
    grid = s.run(jobs, batch_size).view(lm.n_layers, s.n_pos)
    return PatchResult(grid, s.clean_m, s.corrupt_m, _columns(lm, s.corrupt_ids), hook, metric)


def patch_heads(lm, clean, corrupt, answer, wrong=None, position="all", metric: str = "logit_diff",
                batch_size: int = 16) -> PatchResult:
    """Patch one clean attention head (its ``hook_z``) at a time into the corrupted run.

    ``position="all"`` patches the head at every position; an int (``-1``: the last token) at that one.
    Returns a :class:`PatchResult` with ``grid[layer, head]``.
    """
    s = _Setup(lm, clean, corrupt, answer, wrong, metric)
    pos = _head_pos(position, s.n_pos)
    names = [f"blocks.{L}.attn.hook_z" for L in range(lm.n_layers)]
    s.clean_acts = {n: a[0] for n, a in s.baselines(names).items()}
    H = lm.anatomy.n_heads
    grid = s.run([(n, (pos, h)) for n in names for h in range(H)], batch_size).view(lm.n_layers, H)
    return PatchResult(grid, s.clean_m, s.corrupt_m, [f"head {h}" for h in range(H)], f"attn.hook_z@{position}", metric)


def patch_one(lm, clean, corrupt, answer, wrong=None, hook: str = "blocks.0.hook_resid_pre", position=None,
              heads=None, metric: str = "logit_diff") -> float:
    """The normalised score of one patch: any editable hook point, optionally at one position and/or heads.

    ``position`` (int) and ``heads`` (int or list, for per-head points) select part of the activation;
    ``None`` patches all of it.
    """
    s = _Setup(lm, clean, corrupt, answer, wrong, metric)
    spec = lm.resolve(hook)
    if len(spec) != 1:
        raise ShoestringError(f"'{hook}' names {len(spec)} hook points", "name exactly one")
    if spec[0].layer is not None:
        _check_layer(lm, spec[0].layer)
    name = spec[0].name
    pos = slice(None) if position is None else _check_pos(position, s.n_pos)
    index = (pos,)
    if heads is not None:
        hs = [heads] if isinstance(heads, int) else list(heads)
        for h in hs:
            if not 0 <= h < lm.anatomy.n_heads:
                raise ShoestringError(f"head {h} is out of range", f"{lm.name} has {lm.anatomy.n_heads} heads: use 0 to {lm.anatomy.n_heads - 1}")
        if "head" not in spec[0].shape:
            raise ShoestringError(f"'{name}' has no head axis", "pick heads only at attn.hook_z / hook_q / hook_k / hook_v")
        index = (pos, torch.tensor(hs))
    s.clean_acts = {name: s.baselines([name])[name][0]}
    return float(s.run([(name, index)])[0])


def _head_pos(position, n_pos: int):
    if position == "all":
        return slice(None)
    if isinstance(position, int):
        return _check_pos(position, n_pos)
    raise ShoestringError(f"position must be 'all' or an int, got {position!r}", "use position='all' or position=-1")


def _columns(lm, ids: torch.Tensor) -> list[str]:
    toks = ids[0].tolist()
    if lm.tokenizer is None:
        return [f"{i}:{t}" for i, t in enumerate(toks)]
    return [f"{i}:{lm.tokenizer.decode([t])}" for i, t in enumerate(toks)]
