"""The desensitizer: a dataset's approved policy applied to Arrow record batches.

Pipeline per batch: refuse unless the batch has exactly the policy's columns; shift the time
column by the task-secret offset; transform the entity columns; then either (no resampling)
suppress small entities and transform the value columns, or (resampling) buffer the rows and,
at :meth:`Desensitizer.finish`, aggregate per entity and period, suppress small entities and
transform the aggregated values. Entity transforms run before grouping, so a ``generalize`` on
an entity merges its groups; value transforms run after aggregation, so noise is calibrated to
the released aggregate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.spec import (
    Clip,
    ColumnPolicy,
    Dataset,
    Gaussian,
    Generalize,
    Keep,
    Laplace,
    Mask,
    Pseudonymize,
    Round,
    Truncate,
)

from ._columns import (
    PseudonymMemo,
    as_numbers,
    check_released,
    clip,
    decoded,
    generalize,
    mask,
    narrow_indices,
    pseudonymize,
    round_values,
    truncate,
    type_mismatch,
)
from ._keys import check_task_key, pseudonym_key, time_shift_days
from ._noise import NoiseSource, add_gaussian, add_laplace, gaussian_sigma
from ._time import bucket, check_time_type, parse_frequency, shift_days

_ROWS = "_rows"

EntityKey = tuple[object, ...]


def _refuse(message: str, id: str, **context: object) -> DataError:
    return DataError(message, id=id, context=context)


def _check_policy(dataset: Dataset) -> None:
    """The same coverage rules as spec validation, again: a Dataset can be built unvalidated."""
    policy = dataset.policy
    declared = dataset.columns()
    if len(set(declared)) != len(declared) or set(policy.columns) != set(declared):
        raise _refuse(
            f"dataset {dataset.name!r}: the policy must name exactly the declared columns "
            f"(declared {sorted(declared)}, policy names {sorted(policy.columns)})",
            "data.policy.invalid",
            dataset=dataset.name,
        )
    if policy.columns[dataset.time_column].action != "keep":
        raise _refuse(
            f"dataset {dataset.name!r}: the time column {dataset.time_column!r} must be kept",
            "data.policy.invalid",
            dataset=dataset.name,
        )
    for rule in policy.columns.values():
        if isinstance(rule, Gaussian):
            gaussian_sigma(rule)
    if policy.resample is not None:
        parse_frequency(policy.resample.to)


def plain(values: pa.Array) -> pa.Array:
    """A dictionary-encoded column as its plain values (group-by and sort keys want them)."""
    if pa.types.is_dictionary(values.type):
        flat: pa.Array = values.dictionary_decode()
        return flat
    return values


class Desensitizer:
    """Applies one dataset's policy for one task; every gateway of the task builds its own.

    ``task_key`` (32 bytes, made in the analysis runtime and handed over the attested channel)
    keys the pseudonyms and the time offset, so both agree across parties; it is used during
    construction and not kept. ``noise_seed`` exists for reproducible tests only: in production
    leave it unset and the noise is seeded from ``os.urandom``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        task_key: bytes,
        task_id: bytes,
        noise_seed: bytes | None = None,
    ) -> None:
        check_task_key(task_key, task_id)
        _check_policy(dataset)
        policy = dataset.policy
        self._dataset = dataset
        self._rules: dict[str, ColumnPolicy] = dict(policy.columns)
        self._time = dataset.time_column
        self._entities = [c for c in dataset.entity_columns if self._released(c)]
        self._values = [c for c in dataset.value_columns if self._released(c)]
        self._output = tuple(c for c in dataset.columns() if self._released(c))
        self._key = pseudonym_key(task_key, task_id)
        self._shift = (
            time_shift_days(task_key, task_id, policy.time_shift.max_days)
            if policy.time_shift is not None
            else 0
        )
        self._period = parse_frequency(policy.resample.to) if policy.resample else None
        self._k = policy.k_threshold
        self._noise = NoiseSource(noise_seed if noise_seed is not None else os.urandom(32))
        self._memo: dict[str, PseudonymMemo] = {c: PseudonymMemo() for c in self._rules}
        self._counts: dict[EntityKey, int] | None = None
        self._buffer: list[tuple[pa.Table, pa.Array]] = []
        self._finished = False

    def __repr__(self) -> str:
        return f"Desensitizer(dataset={self._dataset.name!r})"

    def _released(self, column: str) -> bool:
        return self._rules[column].action != "drop"

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The released columns: every declared column not dropped, in declaration order."""
        return self._output

    @property
    def needs_counting_pass(self) -> bool:
        """True when a k-threshold must count entities over the whole dataset first."""
        return self._k is not None and self._period is None

    def run(self, source: Callable[[], Iterable[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
        """Both passes over a re-readable source; yields only non-empty batches."""
        if self.needs_counting_pass:
            self.count_pass(source())
        for batch in source():
            released = self.process(batch)
            if released is not None and released.num_rows:
                yield released
        last = self.finish()
        if last is not None and last.num_rows:
            yield last

    def count_pass(self, batches: Iterable[pa.RecordBatch]) -> None:
        """First pass for a k-threshold: rows per released entity over the whole dataset."""
        if not self.needs_counting_pass or self._counts is not None:
            raise _refuse("no counting pass is due now", "data.policy.pass_order")
        counts: dict[EntityKey, int] = {}
        for batch in batches:
            columns = self._prepare(batch)
            for key, rows in self._group_sizes(columns).items():
                counts[key] = counts.get(key, 0) + rows
        self._counts = counts

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """Release one batch, or buffer it when resampling (the result comes from finish)."""
        if self._finished:
            raise _refuse("the desensitizer has finished", "data.policy.pass_order")
        if self.needs_counting_pass and self._counts is None:
            raise _refuse("the k-threshold needs count_pass first", "data.policy.pass_order")
        columns = self._prepare(batch)
        if self._period is not None:
            multiple, unit = self._period
            moment = columns[self._time]
            columns[self._time] = bucket(moment, multiple, unit)
            table = pa.table({name: plain(values) for name, values in columns.items()})
            if self._buffer and table.schema != self._buffer[0][0].schema:
                raise _refuse(
                    f"dataset {self._dataset.name!r}: a batch's column types differ from the "
                    "first batch's, so the two cannot be resampled together",
                    "data.policy.type_mismatch",
                )
            self._buffer.append((table, moment))
            return None
        if self._counts is not None:
            columns = self._suppress(columns, self._counts)
        return self._release(columns)

    def finish(self) -> pa.RecordBatch | None:
        """End the stream: the resampled release, or None when nothing was buffered."""
        if self._finished:
            raise _refuse("the desensitizer has finished", "data.policy.pass_order")
        self._finished = True
        if self._period is None or not self._buffer:
            return None
        table = pa.concat_tables([table for table, _ in self._buffer])
        moments = pa.chunked_array([moment for _, moment in self._buffer])
        self._buffer = []
        columns, rows = self._aggregate(table, moments)
        if self._k is not None:
            columns = self._suppress(columns, self._group_sizes(columns, rows))
        return self._release(columns)

    def _prepare(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        """Refuse a batch with other columns; shift time, transform entities, keep values raw."""
        names = batch.schema.names
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise _refuse(
                f"batch has duplicated columns {duplicated}",
                "data.policy.uncovered_column",
                columns=duplicated,
            )
        uncovered = sorted(set(names) - set(self._rules))
        if uncovered:
            raise _refuse(
                f"dataset {self._dataset.name!r}: columns {uncovered} are not in the policy",
                "data.policy.uncovered_column",
                columns=uncovered,
            )
        missing = [c for c in self._rules if c not in names]
        if missing:
            raise _refuse(
                f"dataset {self._dataset.name!r}: declared columns {missing} are missing",
                "data.policy.missing_column",
                columns=missing,
            )
        time = batch.column(self._time)
        check_time_type(time, self._time)
        columns = {self._time: shift_days(time, self._shift)}
        for name in self._entities:
            columns[name] = self._apply(name, batch.column(name))
        for name in self._values:
            columns[name] = batch.column(name)
        return columns

    def _apply(self, name: str, values: pa.Array) -> pa.Array:
        rule = self._rules[name]
        if isinstance(rule, Keep):
            return values
        if isinstance(rule, Pseudonymize):
            return pseudonymize(values, self._key, self._memo[name], name)
        if isinstance(rule, Mask):
            return mask(values, rule, name)
        if isinstance(rule, Truncate):
            return truncate(values, rule, name)
        if isinstance(rule, Generalize):
            return generalize(values, rule, name)
        if isinstance(rule, Round):
            return round_values(values, rule, name)
        if isinstance(rule, Clip):
            return clip(values, rule, name)
        if isinstance(rule, Laplace):
            return add_laplace(as_numbers(values, name, "laplace"), rule, self._noise, name)
        if isinstance(rule, Gaussian):
            return add_gaussian(as_numbers(values, name, "gaussian"), rule, self._noise, name)
        raise _refuse(f"column {name!r}: no transform for {rule.action!r}", "data.policy.invalid")

    def _release(self, columns: dict[str, pa.Array]) -> pa.RecordBatch:
        for name in self._values:
            before = columns[name]
            columns[name] = self._apply(name, before)
            check_released(name, self._rules[name], before, columns[name])
        for name in self._entities:
            # Pseudonyms always leave dictionary-encoded, also after suppression or resampling.
            values = columns[name]
            if isinstance(self._rules[name], Pseudonymize) and not pa.types.is_dictionary(
                values.type
            ):
                columns[name] = narrow_indices(values.dictionary_encode())
        return pa.RecordBatch.from_arrays([columns[c] for c in self._output], names=self._output)

    def _entity_table(self, columns: dict[str, pa.Array], extra: dict[str, pa.Array]) -> pa.Table:
        keyed = {f"_e{i}": plain(columns[name]) for i, name in enumerate(self._entities)}
        return pa.table({**keyed, **extra})

    def _distinct(self, grouped: pa.Table) -> list[EntityKey]:
        parts = [grouped.column(f"_e{i}").to_pylist() for i in range(len(self._entities))]
        return list(zip(*parts, strict=True)) if parts else [()]

    def _group_sizes(
        self, columns: dict[str, pa.Array], rows: pa.Array | None = None
    ) -> dict[EntityKey, int]:
        """Source rows per released entity (``rows``: how many each input row stands for)."""
        length = len(columns[self._time])
        weights = rows if rows is not None else pa.array(np.ones(length, dtype=np.int64))
        if not self._entities:
            return {(): int(pc.sum(weights).as_py() or 0)} if length else {}
        table = self._entity_table(columns, {_ROWS: weights})
        keys = [f"_e{i}" for i in range(len(self._entities))]
        grouped = table.group_by(keys, use_threads=False).aggregate([(_ROWS, "sum")])
        sizes = grouped.column(f"{_ROWS}_sum").to_pylist()
        return dict(zip(self._distinct(grouped), sizes, strict=True))

    def _suppress(
        self, columns: dict[str, pa.Array], counts: dict[EntityKey, int]
    ) -> dict[str, pa.Array]:
        """Drop every row of a released entity with fewer than k source rows."""
        assert self._k is not None
        length = len(columns[self._time])
        if not self._entities:
            keep = np.full(length, counts.get((), 0) >= self._k)
            return {name: values.filter(pa.array(keep)) for name, values in columns.items()}
        table = self._entity_table(columns, {"_i": pa.array(np.arange(length, dtype=np.int64))})
        keys = [f"_e{i}" for i in range(len(self._entities))]
        grouped = table.group_by(keys, use_threads=False).aggregate([("_i", "list")])
        allowed = [counts.get(key, 0) >= self._k for key in self._distinct(grouped)]
        lists = grouped.column("_i_list").combine_chunks()
        rows = np.sort(np.asarray(pc.list_flatten(lists.filter(pa.array(allowed)))))
        index = pa.array(rows, type=pa.int64())
        return {name: values.take(index) for name, values in columns.items()}

    def _aggregate(
        self, table: pa.Table, moments: pa.ChunkedArray
    ) -> tuple[dict[str, pa.Array], pa.Array]:
        """Per released entity and period; ``last`` is the latest non-null value by ``moments``.

        The sort is stable, so rows with equal times keep their input order.
        """
        assert self._dataset.policy.resample is not None
        how = self._dataset.policy.resample.agg
        for name in self._values:
            values = decoded(table.column(name).combine_chunks())
            if how in ("sum", "mean") and not (
                pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
            ):
                raise type_mismatch(name, f"resample {how}", values, "numbers")
        keys = [*self._entities, self._time]
        position = {name: f"_c{i}" for i, name in enumerate(table.column_names)}
        renamed = table.rename_columns(list(position.values())).append_column("_order", moments)
        order = [(position[name], "ascending") for name in keys] + [("_order", "ascending")]
        renamed = renamed.sort_by(order)
        aggregations: list[tuple[str | list[str], str]] = [
            (position[name], how) for name in self._values
        ]
        aggregations.append(([], "count_all"))
        grouped = renamed.group_by([position[k] for k in keys], use_threads=False).aggregate(
            aggregations
        )
        grouped = grouped.sort_by([(position[k], "ascending") for k in keys])
        columns = {name: grouped.column(position[name]).combine_chunks() for name in keys}
        for name in self._values:
            columns[name] = grouped.column(f"{position[name]}_{how}").combine_chunks()
        return columns, grouped.column("count_all").combine_chunks()
