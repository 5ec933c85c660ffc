"""Helpers shared by the SAE tests (a unique module name: pytest puts every test folder on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from shoestring.sae import make_sae
from shoestring.sae.toy import ToyDictionary

_STORE_DIR = str(Path(__file__).resolve().parent.parent / "store")
if _STORE_DIR not in sys.path:
    sys.path.append(_STORE_DIR)  # appended, so it shadows nothing

import store_helpers  # noqa: E402,F401  (tiny_lm, random_batches, T_CTX)


@pytest.fixture(autouse=True)
def one_thread():
    """SAE training steps are tiny: intra-op threads only add overhead (ten times slower on a busy 2-core
    machine than one thread). tiny_models sets 2 threads for the whole session; use 1 here, then restore.
    Import it into a test module to make it apply there."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToySource:
    """A training source over a fresh :class:`ToyDictionary` (its generator restarts at every
    ``batches`` call, so ``skip`` really resumes), optionally with inputs multiplied by ``scale``."""

    def __init__(self, batch_size: int, scale: float = 1.0, **toy):
        self.batch_size, self.scale, self.toy = batch_size, scale, toy

    def dictionary(self) -> ToyDictionary:
        return ToyDictionary(**self.toy)

    def batches(self, skip: int = 0):
        for x, _ in ToyDictionary(**self.toy).batches(skip=skip, batch_size=self.batch_size):
            x = x * self.scale
            yield x, x


def identity_relu_sae(d: int, hook_name: str = "", hook_name_out: str | None = None):
    """A ReLU SAE with ``d_sae = 2 d`` whose ``decode(encode(x)) == x`` exactly:
    ``W_enc = [I, -I]``, ``W_dec = [I; -I]``, zero biases (``relu(x) - relu(-x) = x``)."""
    sae = make_sae("standard", d_in=d, d_sae=2 * d, hook_name=hook_name, hook_name_out=hook_name_out)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def randomise(sae, seed: int = 0, bias: float = 0.1):
    """Random non-zero biases (and, for JumpReLU, thresholds) so that every term of the forward matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_enc.copy_(bias * torch.randn(sae.b_enc.shape, generator=g))
        sae.b_dec.copy_(bias * torch.randn(sae.b_dec.shape, generator=g))
        if hasattr(sae, "log_threshold"):
            sae.log_threshold.copy_((0.05 + 0.2 * torch.rand(sae.log_threshold.shape, generator=g)).log())
        if hasattr(sae, "threshold_estimate"):
            sae.threshold_estimate.fill_(0.15)
    return sae
