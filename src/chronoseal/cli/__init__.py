"""The ``chronoseal`` command line: the top of the import graph.

Commands render results and map every :class:`~chronoseal.errors.ChronosealError` to a
message with its stable id and an exit code (0 ok, 1 evidence did not verify, 2 refused).
"""

from __future__ import annotations

import os
import sys

import typer

from chronoseal.errors import ChronosealError

from ._attest import attest_app, measure
from ._audit import audit
from ._chain import chain_app
from ._demo import demo, run
from ._deploy import deploy_app
from ._explorer import explorer
from ._output import err_console, show
from ._predict import predict_app
from ._serve import analysis_app, gateway_app, key_app, party_app
from ._spec import spec_app

app = typer.Typer(
    name="chronoseal",
    help="Multi-party time-series analytics on TEEs, coordinated by a consortium chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(spec_app, name="spec")
app.add_typer(attest_app, name="attest")
app.command("demo")(demo)
app.command("run")(run)
app.command("explorer")(explorer)
app.command("audit")(audit)
app.command("measure")(measure)
app.add_typer(gateway_app, name="gateway")
app.add_typer(analysis_app, name="analysis")
app.add_typer(predict_app, name="predict")
app.add_typer(key_app, name="key")
app.add_typer(deploy_app, name="deploy")
app.add_typer(party_app, name="party")
app.add_typer(chain_app, name="chain")


DEBUG_ENV = "CHRONOSEAL_DEBUG"


def main() -> None:
    """The console entry point: whatever happens, a message with an id and an exit code —
    never a Python traceback (unless ``CHRONOSEAL_DEBUG=1`` asks for one)."""
    try:
        app()
    except ChronosealError as exc:  # a refusal a command did not render itself
        sys.exit(show(exc))
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        internal = ChronosealError(
            f"unexpected {type(exc).__name__}: {exc} (a bug: please report it; set "
            f"{DEBUG_ENV}=1 to see where it happened)",
            id="chronoseal.internal",
        )
        sys.exit(show(internal))


__all__ = ["app", "main"]
