"""Long-context tasks: passkey and multi-key retrieval and extractive recall (QA) built from offline text (no
download), and loaders
for LongBench / RULER files the user has locally."""

from .local import TextCase, load_longbench, load_ruler, score_text, token_f1
from .multikey import MultikeyCase, multikey_cases, score_multikey
from .passkey import PasskeyCase, passkey_cases, score_passkey
from .recall import RecallCase, recall_cases, score_recall

__all__ = ["PasskeyCase", "passkey_cases", "score_passkey", "MultikeyCase", "multikey_cases", "score_multikey",
           "TextCase", "load_longbench", "load_ruler", "score_text", "token_f1", "RecallCase", "recall_cases", "score_recall"]
