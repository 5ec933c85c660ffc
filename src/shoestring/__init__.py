"""shoestring: observe, explain, intervene on, validate, compress and attack LLMs on one GPU or a laptop.

>>> import shoestring
>>> lm = shoestring.load()  # doctest: +SKIP   (the bundled SmolLM2-135M-Instruct)
>>> with lm.capture("blocks.*.hook_resid_post") as acts:  # doctest: +SKIP
...     lm.forward("Hello")
"""

from .errors import ShoestringError
from .hooks import Capture, Edit, HookContext, replace_with
from .models.load import load
from .models.lm import LM

__version__ = "0.1.0"
__all__ = ["LM", "Capture", "Edit", "HookContext", "ShoestringError", "load", "replace_with", "__version__"]
