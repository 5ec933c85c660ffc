"""Study scale on a budget: a small GPT with toggles, analytic FLOPs, training to compute budgets, grids of
variants x budgets x seeds, and compute-equivalent gain (CEG) with intervals (see docs/scaling.md)."""

from .ceg import PowerLaw, bootstrap_ceg, ceg_curve, fit_power_laws, log_slope, readoff_ceg
from .config import PRESETS, GPTConfig, preset
from .flops import forward_flops, train_flops_per_token
from .model import GPT
from .train import TrainConfig, train

__all__ = ["PowerLaw", "bootstrap_ceg", "fit_power_laws", "ceg_curve", "readoff_ceg", "log_slope", "GPT", "GPTConfig",
           "PRESETS", "preset", "forward_flops", "train_flops_per_token", "TrainConfig", "train"]
