"""The explorer's refusals: each has a stable id and the HTTP status its page is served with."""

from __future__ import annotations

from chronoseal.errors import ChronosealError


class ExplorerError(ChronosealError):
    """A request or a start-up the explorer refuses; ``status`` is the page's HTTP status."""

    default_id = "explorer.error"

    def __init__(self, message: str, *, id: str | None = None, status: int = 400) -> None:
        super().__init__(message, id=id)
        self.status = status


class NotConsortium(ExplorerError):
    """The address holds no chronoseal consortium contract on this chain."""

    default_id = "explorer.contract.not_consortium"

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502)
