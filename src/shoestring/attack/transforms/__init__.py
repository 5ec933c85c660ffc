"""Black-box prompt transforms, one file each, in a registry: ``TRANSFORMS[name]`` is the class.

Encodings (base64, ROT13, leetspeak; Wei et al. 2023, https://arxiv.org/abs/2307.02483), code framing (the request
in a comment or a string; Ren et al. 2024, https://arxiv.org/abs/2403.07865), jailbreak templates from files, and
translation into a low-resource language (Yong et al. 2023, https://arxiv.org/abs/2310.02446).

>>> from shoestring.attack.transforms import make_transform
>>> make_transform("leetspeak").apply("Explain how tides work")
'3xp141n h0w 71d35 w0rk'
"""

from __future__ import annotations

from .b64 import Base64
from .base import TRANSFORMS, Transform, make_transform, register
from .code_comment import CodeComment
from .code_string import CodeString
from .leetspeak import Leetspeak
from .rot13 import Rot13
from .template import Template, list_templates
from .translate import LANGUAGES, Translate

__all__ = ["TRANSFORMS", "Transform", "make_transform", "register", "Base64", "Rot13", "Leetspeak", "CodeComment",
           "CodeString", "Template", "list_templates", "Translate", "LANGUAGES"]
