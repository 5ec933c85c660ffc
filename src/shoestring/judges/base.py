"""The base of every judge: ``score(outputs, prompts) -> one number per output`` (the method to override).

A judge is a dataclass whose fields are its settings. Higher is "more of the thing" (more positive, more
fluent, more refusing...); ``name`` and ``higher_is`` say what. Judges see the generated text and, where it
matters, the prompt. A judge that reads the model's own state (``under_intervention = True``, such as the
target log-probability) is scored by the loop while the intervention is active, so it measures the steered
model; every other judge (fluency included: perplexity under the *unsteered* model) runs without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ShoestringError


@dataclass
class Judge:
    name = "base"
    higher_is = "more"
    under_intervention = False

    def score(self, outputs: list[str], prompts: list[str] | None = None) -> list[float]:
        raise NotImplementedError

    def __call__(self, outputs, prompts=None) -> list[float]:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        if prompts is not None:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            if len(prompts) != len(outputs):
                raise ShoestringError(f"{len(outputs)} outputs but {len(prompts)} prompts", "give one prompt per output")
        return [float(s) for s in self.score(outputs, prompts)]
