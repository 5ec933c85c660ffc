"""Red-teaming: behaviour sets, attacks (GCG, black-box transforms, PAIR), judges and their agreement, attack success
with intervals against the compute spent, and the same suite under compression.

>>> from shoestring.attack import GCG, load_behaviours          # doctest: +SKIP
>>> attempts = GCG(steps=50).attack(lm, load_behaviours("advbench", n=3))   # doctest: +SKIP
"""

from .base import Attack, Attempt, Behaviour, Compute, metered
from .behaviours import default_target, load_behaviours
from .gcg import GCG
from .pair import PAIR
from .respond import Responder
from .suite import SuiteConfig
from .transforms import TRANSFORMS, make_transform

ATTACKS = {"gcg": GCG, "pair": PAIR}

__all__ = ["Attack", "Attempt", "Behaviour", "Compute", "metered", "load_behaviours", "default_target", "GCG", "PAIR",
           "Responder", "SuiteConfig", "TRANSFORMS", "make_transform", "ATTACKS"]
