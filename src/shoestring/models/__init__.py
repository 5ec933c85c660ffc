"""Loading models and mapping their anatomy."""

from .anatomy import Anatomy, detect
from .load import load
from .registry import ALIASES, DEFAULT_MODEL

__all__ = ["ALIASES", "Anatomy", "DEFAULT_MODEL", "detect", "load"]
