"""One error type for every mistake a user can make.

Each :class:`ShoestringError` carries a one-line message that names the problem and the fix.
The CLI prints it as one line and exits with code 2; the Python API raises it.
"""

from __future__ import annotations


class ShoestringError(Exception):
    """A user-facing error: one line naming the problem, and the fix.

    Parameters
    ----------
    problem
        What is wrong, e.g. ``"unknown hook point 'blocks.0.hook_resid'"``.
    fix
        What to do about it, e.g. ``"did you mean 'blocks.0.hook_resid_pre'?"``.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}; {fix}")


def nearest(name: str, choices, n: int = 3) -> list[str]:
    """The closest names to ``name`` among ``choices`` (for "did you mean" hints)."""
    import difflib

    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        close = [c for c in choices if name.split(".")[-1] in c][:n]
    return close
