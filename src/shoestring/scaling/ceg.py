"""Compute-equivalent gain (CEG): how much more compute the baseline needs to reach a variant's loss.

Two estimators, both here so they can be compared on the same runs:

- **read-off** (the method of "LLM-e Guess", arXiv 2505.04075): the variant's first crossing of the
  baseline's final loss, interpolated in log compute; ``CEG = C_base_final / C_cross``;
- **fitted curves** (Ho et al. 2024, https://arxiv.org/abs/2403.05812; Gundlach et al. 2025): every variant's
  loss-vs-compute points are fitted with ``L(C) = E + A * C^-alpha`` sharing the irreducible loss ``E``
  (variable projection: for a given ``E`` each curve's ``log A`` and ``alpha`` are a linear least-squares
  fit of ``log(L - E)`` on ``log C``; ``E`` minimises a Huber loss of the residuals of ``log L``). Then
  ``CEG(C) = C_base(L_variant(C)) / C``, where ``C_base(L) = (A_b / (L - E))^(1 / alpha_b)``, a function of
  compute; its slope in log-log says whether the gain is compute-independent (flat) or grows with scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShoestringError


@dataclass
class PowerLaw:
    E: float
    A: float
    alpha: float

    def loss(self, C):
        return self.E + self.A * np.asarray(C, dtype=float) ** -self.alpha

    def compute_for(self, L):
        """Compute at which this curve reaches loss ``L`` (``inf`` at or below ``E``)."""
        gap = np.asarray(L, dtype=float) - self.E
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, (self.A / np.where(gap > 0, gap, 1.0)) ** (1.0 / self.alpha), np.inf)


def _huber(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta)).sum())


def _fit_given_E(E: float, curves) -> tuple[list[PowerLaw], float]:
    laws, loss = [], 0.0
    for C, L in curves:
        x, y = np.log(C), np.log(L - E)
        slope, intercept = np.polyfit(x, y, 1)
        law = PowerLaw(E, float(np.exp(intercept)), float(-slope))
        laws.append(law)
        loss += _huber(np.log(L) - np.log(law.loss(C)), 1e-3)
    return laws, loss


def fit_power_laws(curves: list[tuple], grid: int = 400) -> list[PowerLaw]:
    """Fit ``L = E + A C^-alpha`` to each ``(C, L)`` curve with one shared ``E`` (see the module docstring).

    ``curves``: ``[(compute[n], loss[n]), ...]``, each with at least 3 points and positive values."""
    curves = [(np.asarray(C, dtype=float), np.asarray(L, dtype=float)) for C, L in curves]
    for C, L in curves:
        if len(C) < 3 or len(C) != len(L):
            raise ShoestringError(f"a curve has {len(C)} compute points and {len(L)} losses",
                                  "give at least 3 (compute, loss) points per variant")
        if (C <= 0).any() or (L <= 0).any():
            raise ShoestringError("compute and loss must be positive", "pass FLOPs (or steps) and losses > 0")
    top = min(float(L.min()) for _, L in curves)
    Es = np.linspace(0.0, top * (1 - 1e-6), grid)
    best = min(Es, key=lambda E: _fit_given_E(E, curves)[1])
    step = Es[1] - Es[0]
    lo, hi = max(0.0, best - step), min(top * (1 - 1e-9), best + step)
    for _ in range(60):  # golden-section refinement around the best grid point
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        if _fit_given_E(a, curves)[1] < _fit_given_E(b, curves)[1]:
            hi = b
        else:
            lo = a
    return _fit_given_E((lo + hi) / 2, curves)[0]


def ceg_curve(base: PowerLaw, variant: PowerLaw, C) -> np.ndarray:
    """``CEG(C)``: the compute the baseline needs for the variant's loss at ``C``, over ``C``."""
    C = np.asarray(C, dtype=float)
    return base.compute_for(variant.loss(C)) / C


def log_slope(C, ceg) -> float:
    """Slope of log CEG against log C: about 0 for a compute-independent idea, > 0 when it grows with scale."""
    C, ceg = np.asarray(C, dtype=float), np.asarray(ceg, dtype=float)
    ok = np.isfinite(ceg) & (ceg > 0)
    return float(np.polyfit(np.log(C[ok]), np.log(ceg[ok]), 1)[0])


def readoff_ceg(base_C, base_L, var_C, var_L) -> float:
    """The paper's read-off: the baseline's final compute over the compute at which the variant first reaches
    the baseline's final loss (log-linear interpolation); ``nan`` if it never does."""
    target, c_final = float(base_L[-1]), float(base_C[-1])
    var_C, var_L = np.asarray(var_C, dtype=float), np.asarray(var_L, dtype=float)
    for i in range(len(var_L)):
        if var_L[i] <= target:
            if i == 0:
                return c_final / float(var_C[0])
            t = (var_L[i - 1] - target) / (var_L[i - 1] - var_L[i])
            logc = np.log(var_C[i - 1]) + t * (np.log(var_C[i]) - np.log(var_C[i - 1]))
            return c_final / float(np.exp(logc))
    return float("nan")


def bootstrap_ceg(C, base_runs, variant_runs, at, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                  C_variant=None) -> dict:
    """``CEG`` at compute ``at`` with a percentile interval over seeds.

    ``base_runs`` / ``variant_runs``: ``[seeds, len(C)]`` losses (one row per seed, the same compute points;
    ``C_variant`` when the variant's points sit at other compute values). Each bootstrap draw resamples the
    seeds of both arms with replacement, averages their curves, fits them with a shared ``E`` and evaluates
    ``CEG(at)``. Returns ``{"ceg", "low", "high"}`` (arrays over ``at``), ``"slope"`` of log CEG against
    log C with ``"slope_low"`` / ``"slope_high"``, the point estimates from all seeds."""
    base_runs, variant_runs = np.atleast_2d(np.asarray(base_runs, float)), np.atleast_2d(np.asarray(variant_runs, float))
    if len(base_runs) < 2 or len(variant_runs) < 2:
        raise ShoestringError("an interval over seeds needs at least 2 seeds per arm", "train more seeds")
    C = np.asarray(C, dtype=float)
    Cv = C if C_variant is None else np.asarray(C_variant, dtype=float)
    at = np.asarray(at, dtype=float)
    b, v = fit_power_laws([(C, base_runs.mean(0)), (Cv, variant_runs.mean(0))])
    point = ceg_curve(b, v, at)
    rng = np.random.default_rng(seed)
    draws, slopes = [], []
    for _ in range(n_boot):
        bb = base_runs[rng.integers(0, len(base_runs), len(base_runs))].mean(0)
        vv = variant_runs[rng.integers(0, len(variant_runs), len(variant_runs))].mean(0)
        fb, fv = fit_power_laws([(C, bb), (Cv, vv)], grid=100)
        draws.append(ceg_curve(fb, fv, at))
        ok = np.isfinite(draws[-1]) & (draws[-1] > 0)
        if len(at) > 1 and ok.sum() > 1:
            slopes.append(log_slope(at, draws[-1]))
    draws = np.array(draws)
    tail = (1 - level) / 2 * 100
    many = len(at) > 1 and bool(slopes)
    ok = np.isfinite(point) & (point > 0)
    return {"ceg": point, "low": np.nanpercentile(draws, tail, axis=0), "high": np.nanpercentile(draws, 100 - tail, axis=0),
            "slope": log_slope(at, point) if len(at) > 1 and ok.sum() > 1 else None,
            "slope_low": float(np.percentile(slopes, tail)) if many else None,
            "slope_high": float(np.percentile(slopes, 100 - tail)) if many else None,
            "fits": (b, v)}
