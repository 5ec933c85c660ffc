"""Ground truth for SAEs: activations built from a known sparse dictionary (features in superposition).

``n_features`` unit vectors in ``d`` dimensions (more features than dimensions: superposition, as in
Elhage et al. 2022, "Toy Models of Superposition", https://arxiv.org/abs/2209.10652) fire independently
with probability ``p`` and a random magnitude; an activation is the sum of the firing features (plus
optional noise). A good SAE's decoder rows should match the dictionary: :func:`mean_max_cosine` measures
how well (Sharkey et al. 2022's metric, https://www.lesswrong.com/posts/z6QQJbtpkEAX3Aojj).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ToyDictionary:
    d: int = 64
    n_features: int = 256
    p: float = 0.02
    noise: float = 0.0
    seed: int = 0

    def __post_init__(self):
        # numpy's generator, not torch's: an SAE initialised with torch.manual_seed-style seeds (make_sae's
        # seed=0 default) would otherwise draw this very dictionary as its random decoder
        rng = np.random.default_rng([self.seed, 0x70])
        w = torch.from_numpy(rng.standard_normal((self.n_features, self.d))).float()
        self.features = w / w.norm(dim=1, keepdim=True)  # [n_features, d]
        self._gen = torch.Generator().manual_seed(self.seed + 1)

    def sample(self, n: int) -> torch.Tensor:
        """``[n, d]`` activations (each feature fires with probability ``p``, magnitude uniform in [0.5, 1.5])."""
        on = torch.rand(n, self.n_features, generator=self._gen) < self.p
        mag = 0.5 + torch.rand(n, self.n_features, generator=self._gen)
        x = (on * mag) @ self.features
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=self._gen)
        return x

    def batches(self, skip: int = 0, batch_size: int = 1024):
        """An endless source for :func:`~shoestring.sae.train.train_saes` (``(x, x)`` pairs)."""
        while True:
            x = self.sample(batch_size)
            if skip:
                skip -= 1
                continue
            yield x, x


def mean_max_cosine(truth: torch.Tensor, learned: torch.Tensor) -> float:
    """For each true feature ``[n, d]``, its best cosine among learned directions ``[m, d]``; the mean."""
    a = truth / truth.norm(dim=1, keepdim=True)
    b = learned / learned.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((a @ b.T).max(dim=1).values.mean())
