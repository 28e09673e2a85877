"""Column transforms obey their laws: bounds, idempotence, nulls kept, refusals without values."""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chronoseal.privacy._columns as columns
from chronoseal.errors import DataError
from chronoseal.privacy._keys import keyed_mac, mac

if TYPE_CHECKING:
    from conftest import Release

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
numbers = st.lists(st.one_of(st.none(), finite), min_size=1, max_size=40)
texts = st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=40)
lenient = settings(deadline=None, max_examples=60)


def _floats(values: list[float | None]) -> pa.Array:
    return pa.array(values, type=pa.float64())


@lenient
@given(texts, st.integers(0, 5), st.integers(0, 5), st.sampled_from("*#x"))
def test_mask_keeps_length_and_the_ends_and_is_idempotent(
    release: Release, values: list[str | None], prefix: int, suffix: int, char: str
) -> None:
    rule: dict[str, Any] = {
        "action": "mask",
        "keep_prefix": prefix,
        "keep_suffix": suffix,
        "char": char,
    }
    out = release(rule, pa.array(values, type=pa.string())).to_pylist()
    for raw, masked in zip(values, out, strict=True):
        if raw is None:
            assert masked is None
            continue
        assert masked is not None and len(masked) == len(raw)
        if prefix + suffix < len(raw):
            assert masked[:prefix] == raw[:prefix]
            assert masked[len(raw) - suffix :] == raw[len(raw) - suffix :]
            assert set(masked[prefix : len(raw) - suffix]) == {char}
        else:
            assert masked == char * len(raw)
    again = release(rule, pa.array(out, type=pa.string())).to_pylist()
    assert again == out


@lenient
@given(texts, st.integers(1, 8))
def test_truncate_is_a_bounded_prefix_and_idempotent(
    release: Release, values: list[str | None], length: int
) -> None:
    rule = {"action": "truncate", "length": length}
    out = release(rule, pa.array(values, type=pa.string()), entity=True).to_pylist()
    for raw, cut in zip(values, out, strict=True):
        assert (cut is None) == (raw is None)
        if raw is not None and cut is not None:
            assert len(cut) <= length and raw.startswith(cut)
    assert release(rule, pa.array(out, type=pa.string()), entity=True).to_pylist() == out


def test_truncate_and_mask_accept_integers_as_decimal_text(release: Release) -> None:
    ids = pa.array([1234567, None], type=pa.int64())
    assert release({"action": "truncate", "length": 3}, ids).to_pylist() == ["123", None]
    masked = release({"action": "mask", "keep_suffix": 2}, ids).to_pylist()
    assert masked == ["*****67", None]


def test_truncate_refuses_floats_without_naming_values(release: Release) -> None:
    with pytest.raises(DataError) as info:
        release({"action": "truncate", "length": 2}, _floats([3.14159]))
    assert info.value.id == "data.policy.type_mismatch"
    assert "3.14" not in str(info.value)


_LABEL = re.compile(r"^\[(-?[0-9.e+]+), (-?[0-9.e+]+)([)\]])$")


@lenient
@given(
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=6, unique=True),
    st.lists(st.one_of(st.none(), st.floats(-1500, 1500)), min_size=1, max_size=40),
)
def test_generalize_bins_label_the_range_each_value_is_in(
    release: Release, edges: list[int], values: list[float | None]
) -> None:
    bins = sorted(float(e) for e in edges)
    rule = {"action": "generalize", "bins": bins, "default": "other"}
    out = release(rule, _floats(values)).to_pylist()
    for raw, label in zip(values, out, strict=True):
        if raw is None:
            assert label is None
        elif not bins[0] <= raw <= bins[-1]:
            assert label == "other"
        else:
            assert label is not None
            match = _LABEL.fullmatch(label)
            assert match is not None
            low, high = float(match[1]), float(match[2])
            assert low <= raw and (raw < high or (match[3] == "]" and raw == high))
            assert (match[3] == "]") == (high == bins[-1])


def test_generalize_bins_without_default_refuse_out_of_range(release: Release) -> None:
    rule = {"action": "generalize", "bins": [0, 10, 20]}
    assert release(rule, _floats([0, 9.5, 10, 20])).to_pylist() == [
        "[0, 10)",
        "[0, 10)",
        "[10, 20]",
        "[10, 20]",
    ]
    with pytest.raises(DataError) as info:
        release(rule, _floats([5, 20.5, -1]))
    assert info.value.id == "data.policy.out_of_range"
    assert info.value.context["count"] == 2
    assert "20.5" not in str(info.value)


def test_generalize_mapping_maps_defaults_and_refuses(release: Release) -> None:
    rule: dict[str, Any] = {"action": "generalize", "mapping": {"oak": "tree", "ash": "tree"}}
    values = pa.array(["oak", None, "ash"], type=pa.string())
    assert release(rule, values, entity=True).to_pylist() == ["tree", None, "tree"]
    with pytest.raises(DataError) as info:
        release(rule, pa.array(["oak", "rose"]), entity=True)
    assert info.value.id == "data.policy.unmapped_value"
    assert "rose" not in str(info.value)
    rule["default"] = "other"
    assert release(rule, pa.array(["rose", "ash"]), entity=True).to_pylist() == ["other", "tree"]


@lenient
@given(numbers, st.integers(-3, 6))
def test_round_digits_is_idempotent_and_close(
    release: Release, values: list[float | None], digits: int
) -> None:
    rule = {"action": "round", "digits": digits}
    out = release(rule, _floats(values)).to_pylist()
    for raw, rounded in zip(values, out, strict=True):
        assert (rounded is None) == (raw is None)
        if raw is not None and rounded is not None:
            assert abs(rounded - raw) <= 0.5 * 10.0**-digits * (1 + 1e-9) + 1e-9 * abs(raw)
    assert release(rule, _floats(out)).to_pylist() == out


@lenient
@given(numbers, st.sampled_from([0.25, 0.5, 5.0, 100.0, 0.1]))
def test_round_multiple_lands_on_multiples_and_is_idempotent(
    release: Release, values: list[float | None], multiple: float
) -> None:
    rule = {"action": "round", "multiple": multiple}
    out = release(rule, _floats(values)).to_pylist()
    for raw, rounded in zip(values, out, strict=True):
        if raw is not None and rounded is not None:
            steps = rounded / multiple
            assert math.isclose(steps, round(steps), abs_tol=1e-6)
            assert abs(rounded - raw) <= multiple / 2 * (1 + 1e-9) + 1e-9 * abs(raw)
    assert release(rule, _floats(out)).to_pylist() == out


@lenient
@given(numbers, finite, finite)
def test_clip_bounds_and_idempotence(
    release: Release, values: list[float | None], a: float, b: float
) -> None:
    low, high = sorted((a, b))
    if low == high:
        high = low + 1.0
    rule = {"action": "clip", "min": low, "max": high}
    out = release(rule, _floats(values)).to_pylist()
    for raw, clipped in zip(values, out, strict=True):
        assert (clipped is None) == (raw is None)
        if raw is not None and clipped is not None:
            assert low <= clipped <= high
            assert clipped == raw or not low <= raw <= high
    assert release(rule, _floats(out)).to_pylist() == out


def test_clip_refuses_nan(release: Release) -> None:
    with pytest.raises(DataError) as info:
        release({"action": "clip", "min": 0, "max": 1}, _floats([0.5, math.nan]))
    assert info.value.id == "data.policy.out_of_range"


@pytest.mark.parametrize("rule", [{"digits": 1}, {"multiple": 5.0}])
@pytest.mark.parametrize("infinite", [math.inf, -math.inf])
def test_round_refuses_infinity(release: Release, rule: dict[str, Any], infinite: float) -> None:
    with pytest.raises(DataError) as info:
        release({"action": "round", **rule}, _floats([0.5, infinite, None]))
    assert info.value.id == "data.policy.out_of_range"
    assert info.value.context["count"] == 1


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "round", "digits": 1},
        {"action": "clip", "min": 0, "max": 1},
        {"action": "laplace", "sensitivity": 1, "epsilon": 1},
        {"action": "generalize", "bins": [0, 1]},
    ],
)
def test_numeric_rules_refuse_text(release: Release, rule: dict[str, Any]) -> None:
    with pytest.raises(DataError) as info:
        release(rule, pa.array(["12"]))
    assert info.value.id == "data.policy.type_mismatch"


def test_pseudonymize_calls_hmac_once_per_distinct_value(
    release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []

    def counting(key: bytes) -> Callable[[bytes], bytes]:
        def of(message: bytes) -> bytes:
            calls.append(message)
            return mac(key, message)

        return of

    monkeypatch.setattr(columns, "keyed_mac", counting)
    stations = pa.array(["a", "b", None, "a", "c", "b", "a"] * 1000)
    out = release({"action": "pseudonymize"}, stations, entity=True).to_pylist()
    assert sorted(calls) == [b"a", b"b", b"c"]
    assert len(set(out)) == 4 and out[2] is None


@given(st.binary(min_size=1, max_size=64), st.lists(st.binary(max_size=200), max_size=5))
def test_a_keyed_mac_is_hmac_sha256_under_its_key(key: bytes, messages: list[bytes]) -> None:
    # its key schedule is done once and copied per message: each result stands alone
    of = keyed_mac(key)
    assert [of(m) for m in messages] == [hmac.new(key, m, "sha256").digest() for m in messages]
