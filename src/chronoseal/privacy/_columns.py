"""Column transforms, each a function of one Arrow array, vectorised with pyarrow.compute.

Errors name columns and counts, never values: refusals leave the enclave in logs and on chain.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.spec import Clip, ColumnPolicy, Generalize, Mask, Round, Truncate

from ._keys import keyed_mac

#: Pseudonyms keep 128 bits of the HMAC: collisions need about 2**64 distinct entities.
PSEUDONYM_BYTES = 16
#: RFC 4648 base32 characters, lower case; 128 bits make 26 of them (the last holds 3 bits).
_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_PSEUDONYM_CHARS = 26


def type_mismatch(column: str, action: str, values: pa.Array, wanted: str) -> DataError:
    return DataError(
        f"column {column!r} has type {values.type}, but {action!r} needs {wanted}",
        id="data.policy.type_mismatch",
        context={"column": column, "action": action, "type": str(values.type)},
    )


def decoded(values: pa.Array) -> pa.Array:
    """Dictionary arrays are transformed through their values."""
    if pa.types.is_dictionary(values.type):
        return values.dictionary_decode()
    return values


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def as_text(values: pa.Array, column: str, action: str) -> pa.Array:
    """Strings as they are, integers in decimal; anything else has no canonical text form."""
    values = decoded(values)
    if _is_text(values.type):
        return values.cast(pa.string())
    if pa.types.is_integer(values.type):
        return values.cast(pa.string())
    raise type_mismatch(column, action, values, "strings or integers")


def as_numbers(values: pa.Array, column: str, action: str) -> pa.Array:
    """Numeric transforms work on float64 and release float64."""
    values = decoded(values)
    if not _is_number(values.type):
        raise type_mismatch(column, action, values, "numbers")
    return values.cast(pa.float64())


class PseudonymMemo:
    """The pseudonyms already computed for one column, as two aligned Arrow arrays, so a
    batch is mapped with one vectorised lookup and only never-seen values reach HMAC."""

    def __init__(self) -> None:
        self.values = pa.array([], type=pa.string())
        self.pseudonyms = pa.array([], type=pa.string())

    def __len__(self) -> int:
        return len(self.values)

    def positions(self, distinct: pa.Array) -> pa.Array:
        """Each of ``distinct``'s position in the memo, null where it is not there yet."""
        return pc.index_in(distinct, value_set=self.values)

    def lookup(self, distinct: pa.Array) -> pa.Array:
        return pc.take(self.pseudonyms, self.positions(distinct))

    def add(self, values: pa.Array, pseudonyms: pa.Array) -> None:
        self.values = pa.concat_arrays([self.values, values])
        self.pseudonyms = pa.concat_arrays([self.pseudonyms, pseudonyms])


def base32_lower(digests: bytes) -> pa.Array:
    """Each 16-byte digest of ``digests`` (concatenated) as 26 characters: exactly
    ``base64.b32encode(d).decode().rstrip("=").lower()``, in one vectorised pass (the
    standard library's encoder costs more per value than the HMAC itself)."""
    count = len(digests) // PSEUDONYM_BYTES
    bits = np.unpackbits(
        np.frombuffer(digests, dtype=np.uint8).reshape(count, PSEUDONYM_BYTES), axis=1
    )
    padded = np.zeros((count, _PSEUDONYM_CHARS * 5), dtype=np.uint8)
    padded[:, : PSEUDONYM_BYTES * 8] = bits
    groups = padded.reshape(count, _PSEUDONYM_CHARS, 5)
    index = (
        (groups[..., 0] << 4)
        | (groups[..., 1] << 3)
        | (groups[..., 2] << 2)
        | (groups[..., 3] << 1)
        | groups[..., 4]
    )
    text = _BASE32[index]
    offsets = np.arange(0, (count + 1) * _PSEUDONYM_CHARS, _PSEUDONYM_CHARS, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())]
    )


def pseudonymize(values: pa.Array, key: bytes, memo: PseudonymMemo, column: str) -> pa.Array:
    """HMAC-SHA256 of each distinct value once, as 26 lower-case base32 characters.

    ``memo`` carries the pseudonyms already computed for this column across batches. The
    result is dictionary-encoded (each distinct pseudonym once per batch, in the order of its
    first row, then indices), as released: a 26-character pseudonym repeated on every row
    would otherwise be most of the payload. Each row is looked up in the memo once, and the
    batch's dictionary taken from those integer positions: hashing the strings a second time
    to dictionary-encode them cost ~0.01 CPU-s more per 4 M rows (bench/README.md). The
    bytes are those of ``dictionary_encode`` (a property test compares the two).
    """
    text = as_text(values, column, "pseudonymize")
    positions = memo.positions(text)
    if positions.null_count > text.null_count:
        unseen = pc.unique(text.filter(pc.and_kleene(positions.is_null(), text.is_valid())))
        of = keyed_mac(key)
        digests = b"".join(
            of(value.encode("utf-8"))[:PSEUDONYM_BYTES] for value in unseen.to_pylist()
        )
        memo.add(unseen, base32_lower(digests))
        positions = memo.positions(text)
    present = positions.drop_null() if positions.null_count else positions
    order = pc.unique(present).to_numpy()  # memo positions, in the order of their first row
    width = np.int16 if len(order) <= np.iinfo(np.int16).max else np.int32
    remap = np.zeros(max(len(memo), 1), dtype=width)  # position 0 stands under nulls
    remap[order] = np.arange(len(order), dtype=width)
    rows = remap[positions.fill_null(0).to_numpy()]
    if positions.null_count:
        missing = positions.is_null().to_numpy(zero_copy_only=False)
        rows[missing] = 0
        indices = pa.array(rows, mask=missing)
    else:
        indices = pa.array(rows)
    return pa.DictionaryArray.from_arrays(
        indices, pc.take(memo.pseudonyms, pa.array(order, type=pa.int32())), safe=False
    )


def narrow_indices(values: pa.DictionaryArray) -> pa.DictionaryArray:
    """The same values with int16 indices when the dictionary has at most 32,767 entries
    (the common case: a batch of 65,536 rows rarely holds more entities), else int32: two
    bytes a row less to hash, encrypt and send on both ends. Determined by the values alone,
    so a re-read batch is byte for byte the batch sent."""
    if len(values.dictionary) > np.iinfo(np.int16).max or values.type.index_type == pa.int16():
        return values
    return pa.DictionaryArray.from_arrays(
        values.indices.cast(pa.int16()), values.dictionary, safe=False
    )


def mask(values: pa.Array, rule: Mask, column: str) -> pa.Array:
    """Replace all but a prefix and a suffix with ``char``; length is kept (and revealed).

    When prefix and suffix together would cover the whole value, all of it is masked, so a
    short value is never released whole.
    """
    text = as_text(values, column, "mask")
    length = pc.utf8_length(text)
    hidden = pc.subtract(length, rule.keep_prefix + rule.keep_suffix)
    full = pc.binary_repeat(rule.char, length)
    prefix = pc.utf8_slice_codeunits(text, 0, rule.keep_prefix)
    middle = pc.binary_repeat(rule.char, pc.max_element_wise(hidden, 0))
    if rule.keep_suffix:
        suffix = pc.utf8_slice_codeunits(text, -rule.keep_suffix)
    else:
        suffix = pc.binary_repeat("", length)
    partial = pc.binary_join_element_wise(prefix, middle, suffix, "")
    return pc.if_else(pc.greater(hidden, 0), partial, full)


def truncate(values: pa.Array, rule: Truncate, column: str) -> pa.Array:
    """Keep the first ``length`` characters."""
    return pc.utf8_slice_codeunits(as_text(values, column, "truncate"), 0, rule.length)


def _edge(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def bin_labels(edges: list[float]) -> list[str]:
    """``[a, b)`` for every bin but the last, which is ``[a, b]`` so the top edge is covered."""
    labels = [f"[{_edge(a)}, {_edge(b)})" for a, b in pairwise(edges)]
    labels[-1] = labels[-1][:-1] + "]"
    return labels


def generalize(values: pa.Array, rule: Generalize, column: str) -> pa.Array:
    """Numbers into labelled ranges, or categories through the mapping; else default or refuse."""
    if rule.bins is not None:
        return _generalize_bins(values, rule.bins, rule.default, column)
    assert rule.mapping is not None  # the schema guarantees exactly one of bins and mapping
    return _generalize_mapping(values, rule.mapping, rule.default, column)


def _outside(column: str, count: int, what: str, id: str) -> DataError:
    return DataError(
        f"column {column!r}: {count} values {what} and the rule has no default",
        id=id,
        context={"column": column, "count": count},
    )


def _generalize_bins(
    values: pa.Array, edges: list[float], default: str | None, column: str
) -> pa.Array:
    numbers = as_numbers(values, column, "generalize")
    valid = np.asarray(numbers.is_valid(), dtype=bool)
    x = np.asarray(numbers.fill_null(0.0), dtype=np.float64)
    top = len(edges) - 2
    index = np.searchsorted(np.asarray(edges), x, side="right") - 1
    index[x == edges[-1]] = top
    outside = valid & ~((index >= 0) & (index <= top) & (x <= edges[-1]))
    if outside.any() and default is None:
        raise _outside(
            column, int(outside.sum()), "fall outside the bins", "data.policy.out_of_range"
        )
    index[outside] = top + 1
    index[~valid] = 0
    labels = pa.array([*bin_labels(edges), default], type=pa.string())
    return pc.take(labels, pa.array(index, type=pa.int64(), mask=~valid))


def _generalize_mapping(
    values: pa.Array, mapping: dict[str, str], default: str | None, column: str
) -> pa.Array:
    text = as_text(values, column, "generalize")
    keys = list(mapping)
    index = pc.index_in(text, value_set=pa.array(keys, type=pa.string()))
    unmapped = pc.and_(pc.is_valid(text), pc.is_null(index))
    count = pc.sum(unmapped.cast(pa.int64())).as_py() or 0
    if count and default is None:
        raise _outside(column, count, "have no mapping", "data.policy.unmapped_value")
    index = pc.if_else(unmapped, len(keys), index)
    labels = pa.array([*(mapping[k] for k in keys), default], type=pa.string())
    return pc.take(labels, index)


def round_values(values: pa.Array, rule: Round, column: str) -> pa.Array:
    """Round half to even, to ``digits`` decimals or to a ``multiple``; an infinity is
    refused (it is on no grid, and would leave as it came), as clip refuses NaN."""
    numbers = as_numbers(values, column, "round")
    x = _floats(numbers)
    if len(x) and np.isinf(x).any():
        infinite = int(np.count_nonzero(np.isinf(x)))
        raise DataError(
            f"column {column!r}: {infinite} values are infinite and cannot be rounded",
            id="data.policy.out_of_range",
            context={"column": column, "count": infinite},
        )
    try:
        if rule.digits is not None:
            return pc.round(numbers, ndigits=rule.digits, round_mode="half_to_even")
        assert rule.multiple is not None  # the schema guarantees exactly one of the two
        return pc.round_to_multiple(numbers, multiple=rule.multiple, round_mode="half_to_even")
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"column {column!r}: a value is too large to round as the policy says "
            "(the rounded value would overflow a double)",
            id="data.policy.overflow",
            context={"column": column},
        ) from exc


def clip(values: pa.Array, rule: Clip, column: str) -> pa.Array:
    """Bound every value to [min, max]; NaN is refused since it has no place in the range."""
    numbers = as_numbers(values, column, "clip")
    x = _floats(numbers)
    # NumPy's reductions propagate NaN, so one pass finds whether there is any; Arrow's
    # element-wise min/max kernels are several times slower than np.clip on a stream.
    if len(x) and math.isnan(float(np.min(x))):
        nan = int(np.count_nonzero(np.isnan(x)))
        raise DataError(
            f"column {column!r}: {nan} values are NaN and cannot be clipped",
            id="data.policy.out_of_range",
            context={"column": column, "count": nan},
        )
    bounded = np.clip(x, rule.min, rule.max)
    mask = np.asarray(numbers.is_null(), dtype=bool) if numbers.null_count else None
    return pa.array(bounded, type=pa.float64(), mask=mask)


def _floats(values: pa.Array) -> np.ndarray:
    """A float column as float64 values, nulls as 0.0 (zero-copy when it has no nulls)."""
    numbers = values.cast(pa.float64())
    if numbers.null_count:
        numbers = numbers.fill_null(0.0)
    return np.asarray(numbers, dtype=np.float64)


def _finite_mask(values: pa.Array) -> np.ndarray:
    """True where a value is present and finite (non-numeric columns: where present)."""
    plain = decoded(values)
    present = np.asarray(plain.is_valid(), dtype=bool)
    if not pa.types.is_floating(plain.type):
        return present
    finite: np.ndarray = present & np.isfinite(_floats(plain))
    return finite


def _all_present_and_finite(values: pa.Array) -> bool:
    """One pass in the common case: no nulls, and a finite sum means no NaN or infinity (an
    overflowing sum of finite values only sends the caller to the exact check)."""
    if values.null_count:
        return False
    if not pa.types.is_floating(values.type):
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(_floats(values))))


def _lost_finite(before: pa.Array, after: pa.Array) -> int:
    """How many values present and finite before the transform are not after it."""
    if after is before or _all_present_and_finite(decoded(after)):
        return 0
    return int(np.count_nonzero(_finite_mask(before) & ~_finite_mask(after)))


def _off_grid(numbers: np.ndarray, step: float) -> int:
    """How many values are not a whole multiple of ``step`` (to a relative 1e-6).

    A double of magnitude 2**52 or more is an integer, so it is on any coarser grid without
    a special case; NaN and infinity compare unequal and are never counted here (the finite
    check counts what a transform turned into them).
    """
    if not math.isfinite(step):  # a grid coarser than any double: only zero is on it
        return int(np.count_nonzero(numbers != 0))
    if not len(numbers):
        return 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = numbers / step
        deviation = np.rint(scaled)
        np.subtract(scaled, deviation, out=deviation)
        np.abs(deviation, out=deviation)
        if not np.nanmax(deviation, initial=0.0) > 1e-6:  # within the tightest tolerance
            return 0
        np.abs(scaled, out=scaled)
        np.maximum(scaled, 1.0, out=scaled)
        scaled *= 1e-6
        return int(np.count_nonzero(deviation > scaled))


def check_released(column: str, rule: ColumnPolicy, before: pa.Array, after: pa.Array) -> None:
    """Every released batch, checked: a transform introduces no NaN or infinity, and a
    rounding rule left every value on its grid. A failure refuses the batch (nothing of it
    leaves), with a stable id and a count, never a value."""
    lost = _lost_finite(before, after)
    if lost:
        raise DataError(
            f"column {column!r}: the {rule.action!r} rule turned {lost} finite values into "
            "NaN or infinity; the batch is not released",
            id="data.policy.non_finite_output",
            context={"column": column, "count": lost},
        )
    if isinstance(rule, Round):
        try:
            step = rule.multiple if rule.multiple is not None else 10.0 ** -(rule.digits or 0)
        except OverflowError:
            step = math.inf
        off = _off_grid(_floats(after), step)
        if off:
            raise DataError(
                f"column {column!r}: {off} values were not rounded as the policy "
                "says; the batch is not released",
                id="data.policy.not_rounded",
                context={"column": column, "count": off},
            )
