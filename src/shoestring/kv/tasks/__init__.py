"""Long-context tasks built from offline text (no download): passkey retrieval over length x depth."""

from .passkey import PasskeyCase, passkey_cases, score_passkey

__all__ = ["PasskeyCase", "passkey_cases", "score_passkey"]
