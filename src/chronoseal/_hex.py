"""One rule for showing hashes, ids and addresses to people; machine output keeps them whole.

Every JSON document (``--json`` summaries, ``events[].fields``, audit JSON, the explorer's
``/api``) carries full-length values so they can be compared with the chain; only tables
and pages read by people pass their text through :func:`short_hex`.
"""

from __future__ import annotations

import re

_LONG_HEX = re.compile(r"0x[0-9a-fA-F]{40,}")


def short_hex(text: str, keep: int = 8) -> str:
    """``text`` with every hex value of 40 digits or more (addresses, hashes, ids) cut to
    its first ``keep`` digits and "…"."""
    return _LONG_HEX.sub(lambda m: m.group(0)[: keep + 2] + "…", text)
