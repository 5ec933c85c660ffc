"""An SAE feature as a steering direction: its decoder row ``W_dec[feature]`` at the SAE's hook.

Adding the decoder row steers "towards the feature"; to *clamp* or *flip* the feature itself (set its
activation to a value, or to minus its value, while everything the SAE does not explain stays put) use
:func:`~shoestring.steer.apply.clamp_feature`, which edits through ``encode``/``decode`` and adds back the
SAE's error term (Templeton et al. 2024, "Scaling Monosemanticity",
https://transformer-circuits.pub/2024/scaling-monosemanticity/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import ShoestringError
from ..direction import Direction


def hook_template(hook_name: str) -> tuple[str, int]:
    """``blocks.15.hook_resid_post`` -> (``blocks.{layer}.hook_resid_post``, 15)."""
    m = re.match(r"blocks\.(\d+)\.(.+)", hook_name or "")
    if not m:
        raise ShoestringError(f"the SAE's hook '{hook_name}' is not a block hook", "use an SAE trained on a blocks.L.* hook")
    return "blocks.{layer}." + m.group(2), int(m.group(1))


@dataclass
class SAEFeature:
    feature: int
    name = "sae_feature"

    def fit(self, sae) -> Direction:
        if not 0 <= self.feature < sae.cfg.d_sae:
            raise ShoestringError(f"feature {self.feature} is out of range", f"the SAE has {sae.cfg.d_sae} latents: 0 to {sae.cfg.d_sae - 1}")
        if sae.cfg.is_transcoder:
            raise ShoestringError("a transcoder's decoder rows live in its output hook", "steer with an SAE, or clamp the transcoder's latent")
        template, layer = hook_template(sae.cfg.hook_name)
        v = sae.W_dec[self.feature].detach().float()
        return Direction({layer: v / v.norm().clamp_min(1e-12)}, self.name, template, sae.cfg.model_name,
                         {"feature": self.feature, "sae": repr(sae)})
