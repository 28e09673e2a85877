"""The ``chronoseal`` command line: the top of the import graph.

Commands render results and map every :class:`~chronoseal.errors.ChronosealError` to a
message with its stable id and an exit code (0 ok, 1 evidence did not verify, 2 refused).
"""

from __future__ import annotations

import typer

from ._attest import attest_app, measure
from ._demo import demo
from ._serve import analysis_app, gateway_app, key_app
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
app.command("measure")(measure)
app.add_typer(gateway_app, name="gateway")
app.add_typer(analysis_app, name="analysis")
app.add_typer(key_app, name="key")


def main() -> None:
    app()


__all__ = ["app", "main"]
