"""Long-context tasks: passkey and multi-key retrieval built from offline text (no download), and loaders
for LongBench / RULER files the user has locally."""

from .local import TextCase, load_longbench, load_ruler, score_text, token_f1
from .multikey import MultikeyCase, multikey_cases, score_multikey
from .passkey import PasskeyCase, passkey_cases, score_passkey

__all__ = ["PasskeyCase", "passkey_cases", "score_passkey", "MultikeyCase", "multikey_cases", "score_multikey",
           "TextCase", "load_longbench", "load_ruler", "score_text", "token_f1"]
