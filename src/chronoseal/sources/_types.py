"""Canonical Arrow types and the type rules a dataset's columns must meet.

Every backend yields the same Arrow type for the same logical column, so batches (and the
commitments hashed over them) are byte-identical whichever database a party runs:
integers become int64, floating point and decimals float64, text utf8 ``string``, dates
date32, timestamps microseconds (tz-aware ones in UTC). Anything else is not readable.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from chronoseal.errors import DataError
from chronoseal.spec import Dataset

TypeKind = Literal["boolean", "date", "float", "integer", "string", "timestamp"]

#: Policy actions that work on text; every other action but drop and keep computes on numbers.
_TEXT_ACTIONS = frozenset({"mask", "truncate", "pseudonymize"})


def canonical_type(native: pa.DataType) -> pa.DataType | None:
    """The Arrow type batches carry for a column of ``native`` type; ``None`` if unsupported."""
    if pa.types.is_boolean(native):
        return pa.bool_()
    if pa.types.is_integer(native):
        return pa.int64()
    if pa.types.is_floating(native) or pa.types.is_decimal(native):
        return pa.float64()
    if (
        pa.types.is_string(native)
        or pa.types.is_large_string(native)
        or pa.types.is_string_view(native)
    ):
        return pa.string()
    if pa.types.is_date(native):
        return pa.date32()
    if pa.types.is_timestamp(native):
        return pa.timestamp("us", tz="UTC" if native.tz is not None else None)
    return None


def kind_of(canonical: pa.DataType) -> TypeKind:
    """The coarse kind the type rules speak of, for a canonical type."""
    if pa.types.is_boolean(canonical):
        return "boolean"
    if pa.types.is_integer(canonical):
        return "integer"
    if pa.types.is_floating(canonical):
        return "float"
    if pa.types.is_string(canonical):
        return "string"
    if pa.types.is_date(canonical):
        return "date"
    return "timestamp"


def _value_rule(dataset: Dataset, column: str) -> tuple[frozenset[TypeKind], str] | None:
    """Which kinds a value column may have, given what its policy will do to it."""
    rule = dataset.policy.columns.get(column)
    if rule is None:
        return frozenset({"integer", "float"}), "a value column"
    action = rule.action
    if action == "drop":
        return None
    if action == "generalize":
        if getattr(rule, "bins", None) is not None:
            return frozenset({"integer", "float"}), "policy 'generalize' with bins"
        return frozenset({"string"}), "policy 'generalize' with a mapping"
    if action in _TEXT_ACTIONS:
        return frozenset({"string"}), f"policy {action!r}"
    if action == "keep":
        return frozenset({"integer", "float", "boolean"}), "policy 'keep'"
    return frozenset({"integer", "float"}), f"policy {action!r}"


def type_problems(schema: pa.Schema, dataset: Dataset) -> list[str]:
    """One message per declared column whose type does not fit its role and policy."""
    rules: list[tuple[str, frozenset[TypeKind], str]] = [
        (dataset.time_column, frozenset({"date", "timestamp"}), "the time column")
    ]
    for entity in dataset.entity_columns:
        rule = dataset.policy.columns.get(entity)
        if rule is None or rule.action != "drop":
            rules.append((entity, frozenset({"string", "integer"}), "an entity column"))
    for value in dataset.value_columns:
        found = _value_rule(dataset, value)
        if found is not None:
            rules.append((value, *found))
    problems = []
    for column, allowed, why in rules:
        native = schema.field(column).type
        canonical = canonical_type(native)
        kind = kind_of(canonical) if canonical is not None else None
        if kind not in allowed:
            shown = kind or f"unsupported ({native})"
            need = " or ".join(sorted(allowed))
            problems.append(f"{column!r} is {shown}; {why} needs {need}")
    return problems


def check_dataset(schema: pa.Schema, dataset: Dataset, where: str) -> None:
    """Raise ``data.column.missing`` (every absent column) or ``data.column.type``."""
    names = set(schema.names)
    missing = [c for c in dict.fromkeys(dataset.columns()) if c not in names]
    if missing:
        raise DataError(
            f"{where} has no column {', '.join(repr(c) for c in missing)} "
            f"that dataset {dataset.name!r} declares",
            id="data.column.missing",
            context={"source": where, "dataset": dataset.name, "columns": missing},
        )
    problems = type_problems(schema, dataset)
    if problems:
        raise DataError(
            f"{where} does not fit dataset {dataset.name!r}: " + "; ".join(problems),
            id="data.column.type",
            context={"source": where, "dataset": dataset.name, "problems": problems},
        )
