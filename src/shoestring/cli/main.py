"""Entry point: ``shoestring [--debug] COMMAND ...``.

Every user mistake ends as one line on stderr naming the problem and the fix, with exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

try:  # typer >= 0.20 vendors its own click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc
_ABORT = getattr(click_exc, "Abort", KeyboardInterrupt)

from .attack import attack_app
from .demo import demo
from .generate import generate
from .kv import kv_app
from .scaling import scaling_app
from .prune import prune_app
from .models import info, models
from .observe import observe_app
from .observe_tuned import tuned_lens
from .runs import runs_app, sweep
from .sae import sae_app
from .steer import steer_app
from .store import cache, plan

app = typer.Typer(
    help="shoestring: observe, explain, intervene on, validate, compress and attack LLMs on one GPU or a laptop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(models)
app.command()(info)
app.command()(generate)
app.command()(demo)
app.command()(cache)
app.command()(plan)
app.command()(sweep)
app.add_typer(runs_app, name="runs")
observe_app.command("tuned-lens")(tuned_lens)
app.add_typer(observe_app, name="observe")
app.add_typer(sae_app, name="sae")
app.add_typer(steer_app, name="steer")
app.add_typer(kv_app, name="kv")
app.add_typer(scaling_app, name="scaling")
app.add_typer(prune_app, name="prune")
app.add_typer(attack_app, name="attack")


def _fail(message: str) -> None:
    sys.stderr.write(f"shoestring: error: {message}\n")
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from ..errors import ShoestringError

    try:
        code = app(args=argv, prog_name="shoestring", standalone_mode=False)
    except ShoestringError as err:
        if debug:
            raise
        _fail(str(err))
    except click_exc.UsageError as err:
        if debug:
            raise
        path = err.ctx.command_path if err.ctx is not None and err.ctx.command_path else "shoestring"
        hint = f" (see `{path} --help`)"
        _fail(err.format_message().replace("\n", " ") + hint)
    except (_ABORT, KeyboardInterrupt):
        sys.stderr.write("shoestring: interrupted\n")
        sys.exit(130)
    except MemoryError:
        if debug:
            raise
        _fail("out of memory; use --dtype bfloat16, a shorter input or a smaller model")
    except RuntimeError as err:
        if debug or "out of memory" not in str(err).lower():
            raise
        _fail(f"out of memory ({str(err).splitlines()[0][:100]}); use --dtype bfloat16, a shorter input or a smaller model")
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
