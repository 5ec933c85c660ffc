"""The logit lens: read every layer's residual stream through the final norm and the unembedding.

Based on nostalgebraist, "interpreting GPT: the logit lens" (2020),
https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru ; the KL-to-final measure follows Belrose et al.,
"Eliciting Latent Predictions from Transformers with the Tuned Lens", https://arxiv.org/abs/2303.08112 .

>>> import shoestring
>>> lm = shoestring.load()  # doctest: +SKIP
>>> r = logit_lens(lm, "The capital of France is", target=" Paris")  # doctest: +SKIP
>>> r.rows()[-1]["target_rank"]  # doctest: +SKIP
0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShoestringError


@dataclass
class LensResult:
    """Per layer (rows) at one position: top tokens, the target's rank and probability, entropy, KL.

    Attributes
    ----------
    layers
        Layer indices; ``resid_post`` of each.
    logprobs
        ``[n_layers, d_vocab]`` log-probabilities the lens reads at ``position``.
    final
        ``[d_vocab]`` the model's own log-probabilities at that position.
    """

    layers: list[int]
    logprobs: torch.Tensor
    final: torch.Tensor
    position: int
    target_id: int | None
    tokens: list[str]
    decode: object

    def rows(self, k: int = 5) -> list[dict]:
        probs = self.logprobs.exp()
        entropy = -(probs * self.logprobs).sum(-1)
        kl = (self.final.exp() * (self.final - self.logprobs)).sum(-1)  # KL(final || lens), nats
        out = []
        for i, L in enumerate(self.layers):
            top = self.logprobs[i].topk(k)
            row = {"layer": L, "top_tokens": [self.decode([int(t)]) for t in top.indices],
                   "top_probs": [round(float(p), 4) for p in top.values.exp()],
                   "entropy": round(float(entropy[i]), 4), "kl_to_final": round(float(kl[i]), 4)}
            if self.target_id is not None:
                lp = self.logprobs[i]
                row["target_prob"] = round(float(lp[self.target_id].exp()), 6)
                row["target_rank"] = int((lp > lp[self.target_id]).sum())
            out.append(row)
        return out


def _target_id(lm, target: str | None) -> int | None:
    if target is None:
        return None
    ids = lm.tokenizer.encode(target, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [lm.tokenizer.decode([i]) for i in ids]
        raise ShoestringError(
            f"the target {target!r} is {len(ids)} tokens {pieces}, not one",
            "pass a single token (often with its leading space), e.g. the first piece",
        )
    return ids[0]


@torch.no_grad()
def logit_lens(lm, prompt: str, *, target: str | None = None, position: int = -1,
               layers: list[int] | None = None, lens=None) -> LensResult:
    """Apply ``ln_final`` + unembedding to ``resid_post`` of every layer (or ``layers``) at ``position``.

    At the last layer this is exactly the model's own distribution (the hooks' invariant). With
    ``lens`` (a :class:`~shoestring.observe.tuned_lens.TunedLens`) each layer's residual goes through its
    translator first: the tuned lens.
    """
    enc = lm.tokenize(prompt)
    n_ctx = getattr(lm.model.config, "max_position_embeddings", None)
    n_tok = enc["input_ids"].shape[1]
    if n_ctx and n_tok > n_ctx:
        raise ShoestringError(f"the prompt is {n_tok} tokens, longer than the model's context of {n_ctx}",
                              "shorten the prompt")
    if not -n_tok <= position < n_tok:
        raise ShoestringError(f"position {position} is outside the prompt's {n_tok} tokens", f"use -{n_tok} to {n_tok - 1}")
    tid = _target_id(lm, target)
    layers = list(range(lm.n_layers)) if layers is None else layers
    names = [f"blocks.{L}.hook_resid_post" for L in layers]
    logits, acts = lm.run_with_cache(enc, names, stop_early=False, pos=position)
    resid = torch.cat([acts[n] for n in names], dim=0)[:, 0]  # [n_layers, d_model]
    if lens is not None:
        lens.check_model(lm)
        resid = torch.stack([lens.translate(L, resid[i]) for i, L in enumerate(layers)])
    lp = lm.unembed(resid).float().log_softmax(-1)
    final = logits[0, position].float().log_softmax(-1)
    tokens = [lm.tokenizer.decode([int(t)]) for t in enc["input_ids"][0]]
    return LensResult(layers, lp, final, position, tid, tokens, lm.tokenizer.decode)
