"""The consortium explorer: a read-only web view of the chain for people who audit it.

Pages for the consortium (members, keys, governance proposals, the simulated-TEE flag),
the measurement registry, the tasks and each task's timeline, with a Verify button that
runs the ``chronoseal audit`` checks in the server. Every page is also JSON (``Accept:
application/json`` or ``/api/...``). One in-memory event cache is advanced incrementally
from a cursor, so a refresh reads only the new blocks. The explorer holds no key and has
only GET/HEAD routes: it cannot send a transaction.

Imports only :mod:`chronoseal.ledger`, :mod:`chronoseal.audit` and :mod:`chronoseal.errors`.
"""

from chronoseal.explorer._app import Explorer, create_app, wants_json
from chronoseal.explorer._cache import EventCache, Refresh
from chronoseal.explorer._errors import ExplorerError, NotConsortium
from chronoseal.explorer._read import check_consortium
from chronoseal.explorer._server import (
    RunningExplorer,
    open_consortium,
    serve_explorer,
    start_explorer,
)

__all__ = [
    "EventCache",
    "Explorer",
    "ExplorerError",
    "NotConsortium",
    "Refresh",
    "RunningExplorer",
    "check_consortium",
    "create_app",
    "open_consortium",
    "serve_explorer",
    "start_explorer",
    "wants_json",
]
