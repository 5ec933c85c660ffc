"""Options that ``prune run`` and ``prune curve`` share (one definition, the same defaults and help)."""

from __future__ import annotations

import typer

TaskOpt = typer.Option("stdlib-code", "--task", help="the corpus of the domain to keep")
OtherOpt = typer.Option("austen", "--other", help="the domain it may forget ('' for none)")
ContrastOpt = typer.Option(0.5, "--contrast", help="subtract this x the other domain's importance (0: task only)")
CalibOpt = typer.Option(32, "--calib", help="calibration contexts per domain")
EvalOpt = typer.Option(16, "--eval", help="held-out contexts per domain")
LengthOpt = typer.Option(256, "--length")
BatchOpt = typer.Option(4, "--batch-size")
RecoverLrOpt = typer.Option(5e-5, "--recover-lr")
