"""docs/failure-ids.md is the registry of refusal ids: every id the code raises is in it, with
what happened and what to do, and it is exactly what ``scripts/failure-ids`` writes."""

from __future__ import annotations

import re

import pytest

from chronoseal import _failure_ids as registry

_ROW = re.compile(r"^\| `([a-z0-9_.]+)` \| ([^|]+) \|", re.M)


@pytest.fixture(scope="module")
def found() -> registry.Registry:
    return registry.collect()


@pytest.fixture(scope="module")
def descriptions() -> dict[str, dict[str, str]]:
    return registry.load_descriptions()


def _documented() -> set[str]:
    return {m.group(1) for m in _ROW.finditer(registry.DOC.read_text(encoding="utf-8"))}


def test_every_raised_id_is_described_and_every_description_is_raised(
    found: registry.Registry, descriptions: dict[str, dict[str, str]]
) -> None:
    assert registry.check(found, descriptions) == []


def test_every_raised_id_has_a_row_in_docs(found: registry.Registry) -> None:
    assert sorted(set(found.ids()) - _documented()) == []
    assert sorted(_documented() - set(found.ids())) == []


def test_docs_failure_ids_is_what_the_generator_writes(
    found: registry.Registry, descriptions: dict[str, dict[str, str]]
) -> None:
    current = registry.DOC.read_text(encoding="utf-8")
    assert current == registry.render(found, descriptions), "run scripts/failure-ids"


def test_the_walk_finds_ids_on_every_kind_of_raise_path(found: registry.Registry) -> None:
    ids = found.ids()
    assert ids["attest.evidence.malformed"] == {"AttestationError"}  # a module constant
    assert "ChainRevert" in ids["ledger.task.not_participant"]  # a contract revert reason
    assert ids["attest.collateral.expired"] == {"AttestationError"}  # the DCAP table
    assert ids["review.spec.mismatch"] == {"ReviewRefused"}  # a carrier
    assert ids["prediction.input.gap"] == {"PeerRefused"}  # a helper's argument
    assert ids["attest.sm2.failed"] == {"AttestationError"}  # a helper's default
    assert ids["channel.stream.wrong_party"] == {"StreamIntegrityError"}  # a loop's table
    assert ids["prediction.sealed.tampered"] == {"SealedStateError"}  # a default_id
    assert ids["attest.simulated"] == {"warning"}


def _with(source: str) -> list[str]:
    extra = {"zz/_throwaway.py": "from chronoseal.errors import DataError\n\n" + source}
    return registry.check(registry.collect(extra=extra), registry.load_descriptions())


def test_an_undescribed_id_fails() -> None:
    problems = _with('def f() -> None:\n    raise DataError("m", id="data.throwaway.new")\n')
    assert problems == ["data.throwaway.new (raised as DataError) is undescribed"]


def test_an_id_built_at_run_time_fails() -> None:
    problems = _with('def f(x: str) -> None:\n    raise DataError("m", id=f"data.{x}.new")\n')
    assert len(problems) == 1
    assert "is not an id written here" in problems[0]


def test_an_id_shaped_string_with_no_raise_fails() -> None:
    problems = _with('KNOWN = ("data.throwaway.orphan",)\n')
    assert len(problems) == 1
    assert "'data.throwaway.orphan' looks like a refusal id" in problems[0]


def test_a_description_of_an_id_no_longer_raised_fails(found: registry.Registry) -> None:
    described = {**registry.load_descriptions(), "data.gone.away": {"what": "x", "todo": "y"}}
    assert registry.check(found, described) == [
        "data.gone.away is described but no longer raised anywhere"
    ]


def test_an_entry_without_what_to_do_fails(found: registry.Registry) -> None:
    described = registry.load_descriptions()
    described["data.refused"] = {"what": "something"}
    assert registry.check(found, described) == [
        "data.refused: needs exactly 'what' and 'todo' (missing ['todo'], extra [])"
    ]
