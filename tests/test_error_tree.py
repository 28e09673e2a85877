"""The exception tree drawn in ``chronoseal.errors`` is the whole tree: every error class the
package defines derives from ChronosealError and is drawn there, and the errors that used to
be plain ``ValueError`` keep their messages (``exc.message``) when callers re-raise them."""

from __future__ import annotations

import ast

import pyarrow as pa
import pytest

import chronoseal.errors
from chronoseal import _failure_ids
from chronoseal._decode import DocumentRefused, detail, loads_json
from chronoseal.errors import ChronosealError, DataError
from chronoseal.model import LocalTimeError, TimeRangeError, ZoneTimeError, apply_zone_rule


def _defined_error_classes() -> set[str]:
    trees = {
        path: ast.parse(text) for path, text in _failure_ids._sources(_failure_ids.PACKAGE).items()
    }
    return set(_failure_ids._error_classes(trees))


def _exceptions_outside_the_tree() -> list[str]:
    """Classes deriving from a builtin exception but not from ChronosealError."""
    outside = []
    for path, text in _failure_ids._sources(_failure_ids.PACKAGE).items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.name != "ChronosealError":
                bases = {_failure_ids._base_name(b) for b in node.bases}
                if bases & {"Exception", "ValueError", "RuntimeError", "TypeError"}:
                    if not bases & (_defined_error_classes() | {"ChronosealError"}):
                        outside.append(f"{path}: {node.name}")
    return outside


def test_every_error_class_is_drawn_in_the_tree() -> None:
    tree = chronoseal.errors.__doc__ or ""
    drawn = {line.split()[-1] for line in tree.splitlines() if "── " in line}
    drawn |= {line.split("── ")[1].split()[0] for line in tree.splitlines() if "── " in line}
    assert sorted(_defined_error_classes() - drawn - {"ChronosealError"}) == []


def test_no_exception_class_is_outside_the_tree() -> None:
    assert _exceptions_outside_the_tree() == []


def test_the_former_value_errors_are_in_the_tree() -> None:
    assert issubclass(DocumentRefused, ChronosealError)
    assert issubclass(DocumentRefused, ValueError)  # one ``except ValueError`` still holds
    for cls in (ZoneTimeError, LocalTimeError, TimeRangeError):
        assert issubclass(cls, DataError)


def test_a_refused_document_is_told_without_its_own_id() -> None:
    with pytest.raises(DocumentRefused) as refused:
        loads_json("[" * 40 + "]" * 40, max_bytes=1000, what="request")
    assert refused.value.id == "chronoseal.document.refused"
    assert detail(refused.value) == "the request nests deeper than 32 levels"
    assert detail(ValueError("plain")) == "plain"


def test_a_zone_refusal_keeps_its_message() -> None:
    column = pa.array(
        [pa.scalar(1_000_000, pa.timestamp("s", "Asia/Tokyo")).value],
        pa.timestamp("s", "Asia/Tokyo"),
    )
    with pytest.raises(ZoneTimeError) as refused:
        apply_zone_rule(column, "D")
    assert refused.value.message.startswith("1 zone-aware times are not at a local midnight")
    assert str(refused.value) == f"[data.time.not_local_midnight] {refused.value.message}"
