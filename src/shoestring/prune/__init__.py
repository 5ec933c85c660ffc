"""Structured pruning (issue 9, started): importance criteria, pruning plans, and weight surgery whose result
saves with ``save_pretrained`` and reloads in plain transformers."""

from .importance import CRITERIA, Magnitude, Wanda
from .plan import PruningPlan, model_shape
from .select import contrast_scores, plan_from_scores
from .surgery import apply_plan, n_params

__all__ = ["CRITERIA", "Magnitude", "Wanda", "PruningPlan", "model_shape", "plan_from_scores", "contrast_scores", "apply_plan", "n_params"]
