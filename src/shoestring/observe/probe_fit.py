"""Fitting linear probes: L2 logistic regression (exact Newton in the dual for two classes, LBFGS
for more) and closed-form ridge regression, on standardised features; k-fold CV for the L2 strength;
stratified splits; percentile bootstrap CIs. Pure torch. Used by :mod:`shoestring.observe.probes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ShoestringError

LOGISTIC_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


# -- probes -------------------------------------------------------------------------------------
class _Standardised:
    def _stats(self, X: torch.Tensor) -> torch.Tensor:
        self.mean_, self.std_ = X.mean(0), X.std(0, unbiased=False).clamp(min=1e-6)
        return self._z(X)

    def _z(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.mean_) / self.std_


@dataclass
class LogisticProbe(_Standardised):
    """L2-regularised logistic regression on standardised features.

    Loss: mean cross-entropy + ``l2 / 2 * ||W||^2`` (bias unpenalised). Two classes: Newton's method in
    the dual (fast when examples < features, the usual probing regime); more: multinomial, LBFGS.
    """

    l2: float = 1e-2
    max_iter: int = 100

    def fit(self, X: torch.Tensor, y, n_classes: int | None = None) -> "LogisticProbe":
        X = self._stats(torch.as_tensor(X, dtype=torch.float32))
        y = torch.as_tensor(y, dtype=torch.long)
        c = int(n_classes or int(y.max()) + 1)
        if c == 2:
            w, b = _newton_binary(X.double(), y.double(), self.l2, self.max_iter)
            self.W_ = torch.stack([torch.zeros_like(w), w], 1).float()
            self.b_ = torch.stack([torch.zeros_like(b), b]).float()
            return self
        W = torch.zeros(X.shape[1], c, requires_grad=True)
        b = torch.zeros(c, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], lr=1, max_iter=self.max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-5, tolerance_change=1e-7)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(X @ W + b, y) + 0.5 * self.l2 * (W * W).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.W_, self.b_ = W.detach(), b.detach()
        return self

    def logits(self, X) -> torch.Tensor:
        return self._z(torch.as_tensor(X, dtype=torch.float32)) @ self.W_ + self.b_

    def predict(self, X) -> torch.Tensor:
        return self.logits(X).argmax(-1)

    def loss(self, X, y) -> float:
        return float(F.cross_entropy(self.logits(X), torch.as_tensor(y, dtype=torch.long)))

    def score(self, X, y) -> float:
        return float((self.predict(X) == torch.as_tensor(y)).float().mean())


def _newton_binary(X, y, l2: float, max_iter: int = 50):
    """Binary L2 logistic regression by Newton's method in the dual (``W = X^T a``; exact, bias unpenalised).

    With ``f = K a + b`` (``K = X X^T``) the Newton system reduces to ``n+1`` unknowns, so a step costs
    an ``n x n`` solve however wide the features are; backtracking keeps every step a descent.
    """
    n = X.shape[0]
    K = X @ X.T
    a, b = torch.zeros(n, dtype=X.dtype), torch.zeros((), dtype=X.dtype)

    def loss(a, b):
        f = K @ a + b
        return float((F.softplus(f) - y * f).mean() + 0.5 * l2 * (a @ K @ a))

    cur = loss(a, b)
    for _ in range(max_iter):
        p = torch.sigmoid(K @ a + b)
        dd = p * (1 - p) / n
        g = torch.cat([(p - y) / n + l2 * a, ((p - y).sum() / n)[None]])
        M = torch.empty(n + 1, n + 1, dtype=X.dtype)
        M[:n, :n] = dd[:, None] * K + l2 * torch.eye(n, dtype=X.dtype)
        M[:n, n] = dd
        M[n, :n] = dd @ K
        M[n, n] = dd.sum() + 1e-12
        step = torch.linalg.solve(M, g)
        t = 1.0
        while t > 1e-6:
            new = loss(a - t * step[:n], b - t * step[n])
            if new <= cur:
                break
            t /= 2
        a, b = a - t * step[:n], b - t * step[n]
        done = cur - new < 1e-10 * max(1.0, abs(cur))
        cur = new
        if done:
            break
    return X.T @ a, b


@dataclass
class RidgeProbe(_Standardised):
    """Ridge regression in closed form: ``min mean||y - XW - b||^2 + l2 ||W||^2``.

    Solved in the primal or the dual, whichever system is smaller.
    """

    l2: float = 1e-2

    def fit(self, X, y, n_classes=None) -> "RidgeProbe":
        X = self._stats(torch.as_tensor(X, dtype=torch.float64))
        y = torch.as_tensor(y, dtype=torch.float64)
        Y = y[:, None] if y.ndim == 1 else y
        self.b_ = Y.mean(0)
        Yc, (n, d) = Y - self.b_, X.shape
        if d <= n:
            self.W_ = torch.linalg.solve(X.T @ X + self.l2 * n * torch.eye(d, dtype=X.dtype), X.T @ Yc)
        else:
            self.W_ = X.T @ torch.linalg.solve(X @ X.T + self.l2 * n * torch.eye(n, dtype=X.dtype), Yc)
        self._flat = y.ndim == 1
        return self

    def _z(self, X):
        return super()._z(torch.as_tensor(X, dtype=torch.float64))

    def predict(self, X) -> torch.Tensor:
        out = self._z(X) @ self.W_ + self.b_
        return out[:, 0] if self._flat else out

    def loss(self, X, y) -> float:
        return float(((self.predict(X) - torch.as_tensor(y, dtype=torch.float64)) ** 2).mean())

    def score(self, X, y) -> float:
        return r2(torch.as_tensor(y, dtype=torch.float64), self.predict(X))


def r2(y: torch.Tensor, pred: torch.Tensor) -> float:
    """Coefficient of determination (pooled over outputs)."""
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0


def make_probe(task: str, l2: float):
    return LogisticProbe(l2) if task == "classification" else RidgeProbe(l2)


# -- splits, CV, bootstrap ----------------------------------------------------------------------
def split_indices(labels, val_fraction: float = 0.3, seed: int = 0, stratify: bool = True):
    """Train / validation indices by example; stratified: every class in both, in proportion."""
    if not 0 < val_fraction < 1:
        raise ShoestringError(f"val_fraction={val_fraction}", "use a fraction between 0 and 1, e.g. 0.3")
    g = torch.Generator().manual_seed(seed)
    groups = {}
    if stratify:
        for i, y in enumerate(labels):
            groups.setdefault(y, []).append(i)
    else:
        groups[None] = list(range(len(labels)))
    train, val = [], []
    for key in sorted(groups, key=str):
        idx = [groups[key][j] for j in torch.randperm(len(groups[key]), generator=g).tolist()]
        k = min(max(1, round(val_fraction * len(idx))), len(idx) - 1)
        val += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(val)


def kfold(labels, k: int = 5, seed: int = 0, stratify: bool = True) -> list[list[int]]:
    """``k`` folds (lists of positions into ``labels``), class-balanced when ``stratify``."""
    g = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    groups = {}
    for i, y in enumerate(labels):
        groups.setdefault(y if stratify else None, []).append(i)
    offset = 0
    for key in sorted(groups, key=str):
        for j, p in enumerate(torch.randperm(len(groups[key]), generator=g).tolist()):
            folds[(j + offset) % k].append(groups[key][p])
        offset += len(groups[key])
    return [sorted(f) for f in folds if f]


def choose_l2(X, y, task: str = "classification", grid=None, k: int = 5, seed: int = 0, n_classes=None):
    """Pick the L2 strength by k-fold CV on (X, y): lowest held-out log-loss (MSE for regression).

    Returns ``(l2, {l2: mean held-out loss})``; ties go to the stronger regulariser.
    """
    grid = sorted(grid or (LOGISTIC_GRID if task == "classification" else RIDGE_GRID), reverse=True)
    y_list = list(y.tolist() if torch.is_tensor(y) else y)
    folds = kfold(y_list, k, seed, stratify=task == "classification")
    losses = {}
    for lam in grid:
        total = 0.0
        for held in folds:
            keep = sorted(set(range(len(y_list))) - set(held))
            p = make_probe(task, lam).fit(X[keep], _take(y, keep), n_classes)
            total += p.loss(X[held], _take(y, held)) * len(held)
        losses[lam] = total / len(y_list)
    best = grid[0]
    for lam in grid[1:]:
        if losses[lam] < losses[best] - 1e-9:
            best = lam
    return best, losses


def bootstrap_ci(y, pred, task: str = "classification", n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap CI of accuracy (or R^2) over examples: ``(low, high)``."""
    y, pred = torch.as_tensor(y), torch.as_tensor(pred)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(y), (n_boot, len(y)), generator=g)
    if task == "classification":
        stats = (pred == y).double()[idx].mean(1)
    else:
        yt, yp = y.double()[idx], pred.double()[idx]
        ss_tot = ((yt - yt.mean(1, keepdim=True)) ** 2).sum(1)
        stats = 1 - ((yt - yp) ** 2).sum(1) / ss_tot.clamp(min=1e-12)
    a = (1 - level) / 2
    q = torch.quantile(stats, torch.tensor([a, 1 - a], dtype=torch.float64))
    return float(q[0]), float(q[1])


def _take(y, idx):
    return y[idx] if torch.is_tensor(y) else [y[i] for i in idx]
