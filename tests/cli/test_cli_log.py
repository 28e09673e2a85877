"""Log lines from the components print refusal ids as they are, not as console markup."""

from __future__ import annotations

import pytest

from chronoseal.cli._serve import _log


def test_a_refusal_id_in_a_log_line_is_printed_literally(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _log("weather was refused: [prediction.request.not_recipient] not a recipient")
    assert "[prediction.request.not_recipient]" in capsys.readouterr().out
