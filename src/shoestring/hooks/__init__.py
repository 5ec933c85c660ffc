"""Hook points with TransformerLens names on unmodified HF models: capture and edit."""

from .capture import Capture
from .edit import Edit, replace_with
from .points import PointSpec, build_points
from .registry import HookContext

__all__ = ["Capture", "Edit", "HookContext", "PointSpec", "build_points", "replace_with"]
