"""GCG: Greedy Coordinate Gradient search for an adversarial suffix (Zou et al. 2023, "Universal and Transferable
Adversarial Attacks on Aligned Language Models", https://arxiv.org/abs/2307.15043).

Each step: the gradient of the target loss with respect to the one-hot suffix tokens gives, per position, the
``topk`` most promising replacements; ``search_width`` candidates each swap ``n_replace`` random positions for one
of those; all candidates are scored exactly (batched, with the shared keys and values reused:
:mod:`shoestring.attack.gcg_core`) and the best becomes the next suffix. Options as in the paper and nanoGCG:
a buffer of the best suffixes seen (``buffer_size``), ASCII-only tokens, candidates that survive decode/re-encode
only, early stop when every target token is the argmax, and one suffix for several prompts at once
(``universal``: the "multi-prompt" GCG of the paper, loss averaged over the prompts).

Every ``check_every`` steps the best suffix's greedy response is generated and kept in the attempt's trace with
the compute spent so far, so the suite can draw attack success against steps, forward passes and seconds.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError
from .base import Attack, Attempt, Behaviour, Compute, ForwardCounter
from .gcg_core import SuffixProblem, fast_screen_dtype

PLACEHOLDER = "{optim_str}"


def split_prompt(lm, goal: str, chat: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(before_ids, after_ids)``: the token ids before and after the suffix, which goes right after ``goal``."""
    tok = lm.tokenizer
    if chat and getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": goal + PLACEHOLDER}], tokenize=False,
                                       add_generation_prompt=True)
    else:
        text = goal + PLACEHOLDER
    before, after = text.split(PLACEHOLDER)
    # A chat template writes every special token itself (BOS included, where the model has one): encode it as is.
    b = tok(before, add_special_tokens=not (chat and getattr(tok, "chat_template", None)))["input_ids"]
    a = tok(after, add_special_tokens=False)["input_ids"]
    return torch.tensor(b, dtype=torch.long), torch.tensor(a, dtype=torch.long)


def encode_target(tok, target: str) -> torch.Tensor:
    """The target's token ids; a target the tokenizer cannot encode faithfully is one clear error."""
    if not target or not target.strip():
        raise ShoestringError("the GCG target is empty", "give each behaviour a target such as 'Sure, here is ...'")
    ids = tok(target, add_special_tokens=False)["input_ids"]
    back = tok.decode(ids)
    unk = getattr(tok, "unk_token_id", None)
    if not ids or (unk is not None and unk in ids) or back.strip() != target.strip():
        raise ShoestringError(f"the tokenizer cannot encode the target {target[:60]!r} (it decodes to {back[:60]!r})",
                              "use a target in the tokenizer's alphabet (plain ASCII text is safe)")
    return torch.tensor(ids, dtype=torch.long)


_DISALLOWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {allow_non_ascii: ids}


def disallowed_tokens(tok, allow_non_ascii: bool) -> torch.Tensor:
    """Token ids GCG never proposes: special tokens and (unless allowed) ones that decode to non-ASCII or
    non-printable text. Computed once per tokenizer (decoding the whole vocabulary), not once per search."""
    known = _DISALLOWED.setdefault(tok, {})
    if allow_non_ascii not in known:
        bad = set(tok.all_special_ids)
        if not allow_non_ascii:
            texts = tok.batch_decode([[i] for i in range(len(tok))])
            bad.update(i for i, t in enumerate(texts) if not (t.isascii() and t.isprintable()))
        known[allow_non_ascii] = torch.tensor(sorted(bad), dtype=torch.long)
    return known[allow_non_ascii]


def sample_candidates(current: torch.Tensor, grad: torch.Tensor, search_width: int, topk: int, n_replace: int,
                      generator: torch.Generator) -> torch.Tensor:
    """``search_width`` suffixes, each ``current`` with ``n_replace`` random positions set to one of that
    position's ``topk`` tokens of most negative gradient: ``[search_width, n_suffix]``."""
    n = current.numel()
    top = (-grad).topk(topk, dim=1).indices  # [n, topk]
    pos = torch.rand(search_width, n, generator=generator).argsort(1)[:, :n_replace]  # [w, r]
    pick = torch.randint(0, topk, (search_width, n_replace), generator=generator)
    out = current[None].repeat(search_width, 1)
    out.scatter_(1, pos, top[pos, pick])
    return out


def keep_retokenizable(tok, candidates: torch.Tensor) -> torch.Tensor:
    """Only candidates whose text re-encodes to the same tokens (else the attack would not survive as text)."""
    texts = tok.batch_decode(candidates)
    enc = tok(texts, add_special_tokens=False)["input_ids"]
    keep = [i for i, ids in enumerate(enc) if ids == candidates[i].tolist()]
    return candidates[keep]


@dataclass
class GCG(Attack):
    """Greedy Coordinate Gradient suffix search.

    Parameters
    ----------
    steps, search_width, topk, n_replace
        The search: steps, candidates per step, replacements per position considered, positions swapped.
    suffix_init, suffix_length
        The first suffix; ``suffix_length`` builds ``"x x ... x"`` of that many words instead.
    buffer_size
        Keep the best suffixes seen; each step starts from the best (0: from the last step's best candidate).
    early_stop
        Stop when every target token is the model's argmax (checked on the step's losses, free).
    check_every, max_new_tokens, respond
        Generate the best suffix's greedy response every ``check_every`` steps (and at the end) for the trace,
        through ``respond`` (a :class:`~shoestring.attack.respond.Responder`: plain, or under compression).
    universal
        One suffix for all behaviours (loss averaged over them); else one search per behaviour.
    reuse_stride, batch_size
        The KV reuse grouping and the most candidates per forward pass (:class:`SuffixProblem`).
    screen, rescore
        ``screen="auto"`` scores all candidates in bfloat16 where the hardware is fast at it (``"off"``: never;
        ``"bfloat16"``: always), then rescores the ``rescore`` best exactly in the model's precision and picks
        among those: the losses reported and the suffix chosen come from exact scores. A model already in 16-bit
        is never screened.
    """

    steps: int = 100
    search_width: int = 64
    topk: int = 64
    n_replace: int = 1
    suffix_init: str = "x x x x x x x x x x x x x x x x x x x x"
    suffix_length: int | None = None
    buffer_size: int = 0
    allow_non_ascii: bool = False
    filter_ids: bool = True
    early_stop: bool = True
    check_every: int = 10
    max_new_tokens: int = 32
    universal: bool = False
    reuse_stride: int = 4
    batch_size: int | None = None
    screen: str = "auto"
    rescore: int = 4
    respond: object = field(default=None, repr=False)  # a Responder (compression); default: plain greedy decoding
    seed: int = 0
    chat: bool = True
    name = "gcg"
    white_box = True

    def __post_init__(self):
        for field_name in ("steps", "search_width", "topk", "n_replace", "check_every"):
            if getattr(self, field_name) < 1:
                raise ShoestringError(f"GCG {field_name} must be at least 1 (got {getattr(self, field_name)})",
                                      f"pass a positive --{field_name.replace('_', '-')}")
        if self.suffix_length is not None:
            if self.suffix_length < 1:
                raise ShoestringError(f"the suffix length must be at least 1 token (got {self.suffix_length})",
                                      "pass --suffix-length 20 (the paper's length) or another positive number")
            self.suffix_init = " ".join(["x"] * self.suffix_length)
        if self.screen not in ("auto", "off", "bfloat16", "float16"):
            raise ShoestringError(f"unknown GCG screen {self.screen!r}", "use auto, off, bfloat16 or float16")
        if self.rescore < 1:
            raise ShoestringError(f"GCG rescore must be at least 1 (got {self.rescore})", "pass --rescore 4")
        if not self.suffix_init.strip():
            raise ShoestringError("the initial suffix is empty", "pass a suffix such as 'x x x x x' or --suffix-length 20")

    # -- set-up -------------------------------------------------------------------------------
    def problems(self, lm, behaviours: list[Behaviour]) -> list[SuffixProblem]:
        tok = lm.tokenizer
        out = []
        for b in behaviours:
            target = encode_target(tok, b.target)
            before, after = split_prompt(lm, b.goal, self.chat)
            dev = lm.device
            out.append(SuffixProblem(lm, before.to(dev), after.to(dev), target.to(dev), self.reuse_stride,
                                     self.batch_size))
        return out

    def screen_dtype(self, lm) -> torch.dtype | None:
        """The precision candidates are screened in (None: scored exactly, no screen)."""
        if self.screen == "off" or lm.dtype in (torch.float16, torch.bfloat16):
            return None
        if self.screen == "auto":
            return fast_screen_dtype(lm.device)
        return getattr(torch, self.screen)

    def score(self, probs, cands: torch.Tensor, dtype) -> tuple[int, float, bool]:
        """The best candidate's index, exact loss (mean over prompts) and whether it is an exact target match."""
        if dtype is not None and len(cands) > self.rescore:
            screen = sum(p.losses(cands, dtype)[0] for p in probs)
            top = screen.argsort()[: self.rescore]
        else:
            top = torch.arange(len(cands))
        loss = torch.zeros(len(top))
        exact = torch.ones(len(top), dtype=torch.bool)
        for p in probs:
            l_p, e_p = p.losses(cands[top], reuse=len(top) > self.rescore)
            loss += l_p / len(probs)
            exact &= e_p
        i = int(loss.argmin())
        return int(top[i]), float(loss[i]), bool(exact[i])

    def init_ids(self, lm) -> torch.Tensor:
        ids = lm.tokenizer(self.suffix_init, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ShoestringError("the initial suffix encodes to no tokens", "pass a longer --suffix-init")
        return torch.tensor(ids, dtype=torch.long, device=lm.device)

    # -- the search -----------------------------------------------------------------------------
    def attack(self, lm, behaviours: list[Behaviour], on_step=None) -> list[Attempt]:
        """One :class:`Attempt` per behaviour (``universal``: the same suffix for all, compute = the whole search).
        ``on_step(step, loss)`` is called after each step, and once with ``(0, None)`` when the set-up is done."""
        if not behaviours:
            raise ShoestringError("GCG got no behaviours", "give at least one behaviour")
        groups = [behaviours] if self.universal else [[b] for b in behaviours]
        out = []
        for group in groups:
            out.extend(self._search(lm, group, on_step))
        return out

    def _search(self, lm, group: list[Behaviour], on_step) -> list[Attempt]:
        from ..kv.measure import peak_memory

        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        tok = lm.tokenizer
        compute = Compute()
        trace: list[dict] = []
        losses: list[float] = []
        t0 = time.perf_counter()
        with ForwardCounter(lm.model) as fc, peak_memory(lm.device) as peak:
            probs = self.problems(lm, group)
            banned = disallowed_tokens(tok, self.allow_non_ascii).to(lm.device)
            current = self.init_ids(lm)
            dtype = self.screen_dtype(lm)
            buffer: list[tuple[float, torch.Tensor]] = []
            best = (float("inf"), current)
            stopped = False
            if on_step is not None:
                on_step(0, None)  # set-up done: the search starts
            for step in range(1, self.steps + 1):
                grad = torch.zeros(current.numel(), lm.model.get_input_embeddings().weight.shape[0], device=lm.device)
                start_loss = 0.0
                for p in probs:
                    g, l0, _ = p.gradient(current)
                    grad += g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                    start_loss += l0 / len(probs)
                if step == 1:
                    best = (start_loss, current)
                grad[:, banned] = float("inf")
                cands = sample_candidates(current, grad, self.search_width, self.topk, self.n_replace, gen)
                if self.filter_ids:
                    cands = keep_retokenizable(tok, cands)
                    if len(cands) == 0:
                        raise ShoestringError("no candidate suffix survives decoding and re-encoding",
                                              "pass --no-filter-ids or a different --suffix-init")
                cands = torch.unique(cands, dim=0)
                i, step_loss, hit = self.score(probs, cands, dtype)
                step_ids = cands[i]
                losses.append(step_loss)
                if step_loss < best[0]:
                    best = (step_loss, step_ids)
                current = self._next(buffer, step_loss, step_ids)
                done = self.early_stop and hit
                if on_step is not None:
                    on_step(step, step_loss)
                if step % self.check_every == 0 or step == self.steps or done:
                    trace.append(self._check(lm, probs, best[1], step, best[0], fc, t0))
                if done:
                    stopped = True
                    break
        compute.steps = len(losses)
        compute.forward_passes, compute.tokens = fc.passes, fc.tokens
        compute.seconds = time.perf_counter() - t0
        compute.peak_memory_bytes = int(peak["peak_bytes"])
        suffix = tok.decode(best[1])
        out = []
        for k, b in enumerate(group):
            responses = trace[-1]["responses"] if trace else [""] * len(group)
            rows = [{**{key: v for key, v in row.items() if key != "responses"}, "response": row["responses"][k]}
                    for row in trace]
            out.append(Attempt(behaviour=b, attack=self.name, prompt=b.goal + suffix, response=responses[k],
                               compute=Compute(**compute.to_dict()), trace=rows,
                               extra={"suffix": suffix, "suffix_ids": best[1].tolist(), "best_loss": best[0],
                                      "losses": losses, "early_stopped": stopped, "universal": self.universal,
                                      "behaviours_in_search": len(group),
                                      "screen": str(dtype).replace("torch.", "") if dtype else "off"}))
        return out

    def _next(self, buffer: list, loss: float, ids: torch.Tensor) -> torch.Tensor:
        """The suffix the next step starts from: the step's best candidate, or the buffer's best."""
        if self.buffer_size <= 0:
            return ids
        buffer.append((loss, ids))
        buffer.sort(key=lambda t: t[0])
        del buffer[self.buffer_size:]
        return buffer[0][1]

    @torch.no_grad()
    def _check(self, lm, probs, suffix_ids, step, loss, fc, t0) -> dict:
        """The best suffix's greedy responses now, with the compute spent so far (a trace row)."""
        if self.respond is None:
            from .respond import Responder

            self.respond = Responder(lm, self.max_new_tokens)
        responses = self.respond.ids([p.full_ids(suffix_ids) for p in probs])
        return {"step": step, "loss": loss, "suffix": lm.tokenizer.decode(suffix_ids), "responses": responses,
                "forward_passes": fc.passes, "tokens": fc.tokens, "seconds": time.perf_counter() - t0}
