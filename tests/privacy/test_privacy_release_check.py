"""The per-batch release check, sped up, refuses exactly what the plain formulation refuses."""

from __future__ import annotations

import base64
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.errors import DataError
from chronoseal.privacy._columns import PseudonymMemo, check_released, clip, pseudonymize
from chronoseal.privacy._keys import mac
from chronoseal.spec import Clip, ColumnPolicy, Keep, Laplace, Round


def _reference(rule: ColumnPolicy, before: pa.Array, after: pa.Array) -> tuple[str, int] | None:
    """The check as first written, one plain numpy pass per step (the specification)."""

    def finite(values: pa.Array) -> np.ndarray:
        present = np.asarray(values.is_valid(), dtype=bool)
        if not pa.types.is_floating(values.type):
            return present
        return present & np.isfinite(np.asarray(values.fill_null(0.0), dtype=np.float64))

    lost = int((finite(before) & ~finite(after)).sum())
    if lost:
        return ("data.policy.non_finite_output", lost)
    if isinstance(rule, Round):
        numbers = np.asarray(after.cast(pa.float64()).fill_null(0.0), dtype=np.float64)
        try:
            step = rule.multiple if rule.multiple is not None else 10.0 ** -(rule.digits or 0)
        except OverflowError:
            step = math.inf
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scaled = numbers / step
            exact = np.abs(scaled) >= 2.0**52
            deviation = np.abs(scaled - np.rint(scaled))
            off = ~exact & (deviation > 1e-6 * np.maximum(1.0, np.abs(scaled)))
        if not math.isfinite(step):
            off = numbers != 0
        if int(off.sum()):
            return ("data.policy.not_rounded", int(off.sum()))
    return None


def _outcome(rule: ColumnPolicy, before: pa.Array, after: pa.Array) -> tuple[str, int] | None:
    try:
        check_released("v", rule, before, after)
    except DataError as exc:
        return (exc.id, int(exc.context["count"]))
    return None


values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.25, 1e-7, 2.0**52, 2.0**53 + 2, 1e300, -1e300]),
    st.integers(-(10**6), 10**6).map(lambda i: i / 1000),
)
rules = st.one_of(
    st.integers(-20, 20).map(
        lambda d: Round.model_construct(action="round", digits=d, multiple=None)
    ),
    st.sampled_from([0.25, 1e-3, 10.0, 1e300, math.inf]).map(
        lambda m: Round.model_construct(action="round", digits=None, multiple=m)
    ),
    st.just(Clip(action="clip", min=0.0, max=1.0)),
    st.just(Keep(action="keep")),
    st.just(Laplace(action="laplace", sensitivity=1.0, epsilon=1.0)),
)


@settings(max_examples=400, deadline=None)
@given(rules, st.lists(st.tuples(values, values), max_size=40), st.booleans())
def test_the_release_check_agrees_with_its_plain_formulation(
    rule: ColumnPolicy, pairs: list[tuple[float | None, float | None]], same: bool
) -> None:
    before = pa.array([b for b, _ in pairs], type=pa.float64())
    after = before if same else pa.array([a for _, a in pairs], type=pa.float64())
    assert _outcome(rule, before, after) == _reference(rule, before, after)


def test_the_release_check_covers_non_float_columns() -> None:
    before = pa.array([1, 2, None, 4], type=pa.int64())
    after = pa.array([1, None, None, 4], type=pa.int64())
    assert _outcome(Keep(action="keep"), before, after) == ("data.policy.non_finite_output", 1)
    assert _outcome(Keep(action="keep"), before, before) is None


def test_pseudonyms_are_the_hmac_of_each_value_whatever_the_memo_holds() -> None:
    key = bytes(range(32))
    memo = PseudonymMemo()
    first = pseudonymize(pa.array(["a", "b", "a", None]), key, memo, "e")
    second = pseudonymize(pa.array(["c", "a", "c"]), key, memo, "e")
    fresh = pseudonymize(pa.array(["c", "a", "c"]), key, PseudonymMemo(), "e")
    assert second.to_pylist() == fresh.to_pylist()
    assert pa.types.is_dictionary(second.type) and len(second.dictionary) == 2
    expected = base64.b32encode(mac(key, b"a")[:16]).decode().rstrip("=").lower()
    assert first.to_pylist() == [expected, first[1].as_py(), expected, None]
    assert len(memo) == 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40),
    st.binary(min_size=32, max_size=32),
)
def test_pseudonyms_are_the_standard_base32_of_the_truncated_hmac(
    values: list[str | None], key: bytes
) -> None:
    def expected(value: str) -> str:
        digest = mac(key, value.encode("utf-8"))[:16]
        return base64.b32encode(digest).decode("ascii").rstrip("=").lower()

    released = pseudonymize(pa.array(values, type=pa.string()), key, PseudonymMemo(), "e")
    assert released.to_pylist() == [None if v is None else expected(v) for v in values]


def _ipc(values: pa.Array) -> bytes:
    batch = pa.record_batch([values], names=["e"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh"), st.text(max_size=4))),
        min_size=1,
        max_size=5,
    ),
    st.binary(min_size=32, max_size=32),
)
def test_pseudonymized_batches_are_the_bytes_of_a_plain_dictionary_encoding(
    batches: list[list[str | None]], key: bytes
) -> None:
    # Rows are looked up in the memo and the dictionary taken from their positions; what
    # leaves must be what dictionary_encode gives (the commitment and a resume rest on it),
    # whatever the earlier batches left in the memo.
    def expected(values: list[str | None]) -> pa.Array:
        encoded = pa.array(values, type=pa.string()).dictionary_encode()
        names = [
            base64.b32encode(mac(key, v.encode("utf-8"))[:16]).decode().rstrip("=").lower()
            for v in encoded.dictionary.to_pylist()
        ]
        narrow = len(names) <= np.iinfo(np.int16).max
        indices = encoded.indices.cast(pa.int16()) if narrow else encoded.indices
        return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string()))

    memo = PseudonymMemo()
    for values in batches:
        got = pseudonymize(pa.array(values, type=pa.string()), key, memo, "e")
        assert _ipc(got) == _ipc(expected(values))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False, width=64)), max_size=40),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(0.001, 1e6, allow_nan=False),
)
def test_clip_bounds_every_present_value_and_keeps_nulls(
    values: list[float | None], low: float, width: float
) -> None:
    rule = Clip(action="clip", min=low, max=low + width)
    out = clip(pa.array(values, type=pa.float64()), rule, "v").to_pylist()
    assert out == [None if v is None else min(max(v, rule.min), rule.max) for v in values]


def test_clip_refuses_nan_with_a_count() -> None:
    with pytest.raises(DataError) as caught:
        clip(pa.array([0.5, math.nan, None, math.nan]), Clip(action="clip", min=0, max=1), "v")
    assert caught.value.id == "data.policy.out_of_range"
    assert caught.value.context["count"] == 2


@pytest.mark.parametrize("n", [0, 1, 65536])
def test_the_release_check_handles_empty_and_large_batches(n: int) -> None:
    before = pa.array(np.linspace(0, 1, n))
    rounded = pa.array(np.round(np.linspace(0, 1, n), 3))
    rule = Round(action="round", digits=3)
    assert _outcome(rule, before, rounded) is None
    if n:
        assert _outcome(rule, before, before) == _reference(rule, before, before)


def test_pseudonyms_leave_with_two_byte_indices_when_the_batch_allows() -> None:
    # two bytes a row less to hash, encrypt and send on both ends; a batch with more distinct
    # values than int16 holds keeps int32 indices, and the values are the same either way
    key = bytes(range(32))
    few = pseudonymize(pa.array([f"m{i % 300}" for i in range(5000)]), key, PseudonymMemo(), "e")
    assert few.type.index_type == pa.int16()
    many = [f"m{i}" for i in range(40_000)]
    wide = pseudonymize(pa.array(many), key, PseudonymMemo(), "e")
    assert wide.type.index_type == pa.int32()
    assert (
        wide.to_pylist()[:5000]
        == pseudonymize(pa.array(many[:5000]), key, PseudonymMemo(), "e").to_pylist()
    )
