"""Sealed state on an untrusted disk: what the prediction runtime writes opens only under
its own sealing key, for its own task and file, in its own order; a crash mid-write loses
at most the record being written; and a journal restored against the chain must match it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.attest import sealing_key
from chronoseal.errors import UnsupportedTee
from chronoseal.prediction import (
    AuditError,
    AuditLeaf,
    AuditLog,
    SealedStateError,
    SealedStore,
    merkle_root,
)

TASK = hashlib.sha256(b"task").digest()
KEY = hashlib.sha256(b"key").digest()


def store(path: Path, key: bytes = KEY, task: bytes = TASK) -> SealedStore:
    return SealedStore(path, key, task)


def test_values_open_only_for_their_key_task_and_name(tmp_path: Path) -> None:
    store(tmp_path).put("model", b"bundle bytes")
    assert store(tmp_path).get("model") == b"bundle bytes"
    assert store(tmp_path).get("absent") is None
    with pytest.raises(SealedStateError):
        store(tmp_path, key=hashlib.sha256(b"other").digest()).get("model")
    with pytest.raises(SealedStateError):
        store(tmp_path, task=hashlib.sha256(b"other task").digest()).get("model")
    os.replace(tmp_path / "model.sealed", tmp_path / "task-key.sealed")  # a swapped file
    with pytest.raises(SealedStateError):
        store(tmp_path).get("task-key")
    assert b"bundle bytes" not in (tmp_path / "task-key.sealed").read_bytes()


def test_a_flipped_byte_anywhere_is_refused(tmp_path: Path) -> None:
    store(tmp_path).put("model", b"x" * 100)
    raw = bytearray((tmp_path / "model.sealed").read_bytes())
    for i in range(0, len(raw), 7):
        damaged = bytearray(raw)
        damaged[i] ^= 1
        (tmp_path / "model.sealed").write_bytes(bytes(damaged))
        with pytest.raises(SealedStateError):
            store(tmp_path).get("model")


@settings(max_examples=40, deadline=None)
@given(records=st.lists(st.binary(max_size=64), min_size=2, max_size=8), data=st.data())
def test_journal_records_come_back_in_order_and_reordering_is_refused(
    tmp_path_factory: pytest.TempPathFactory, records: list[bytes], data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("journal")
    s = store(path)
    for r in records:
        s.append("audit", r)
    assert store(path).records("audit") == records
    raw = (path / "audit.sealed").read_bytes()
    # split into framed records and swap two of them
    frames, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + 4], "big")
        frames.append(raw[pos : pos + 4 + size])
        pos += 4 + size
    i = data.draw(st.integers(0, len(frames) - 2))
    frames[i], frames[i + 1] = frames[i + 1], frames[i]
    (path / "audit.sealed").write_bytes(b"".join(frames))
    with pytest.raises(SealedStateError):
        store(path).records("audit")


def test_a_record_cut_short_by_a_crash_is_dropped_and_appending_continues(
    tmp_path: Path,
) -> None:
    s = store(tmp_path)
    for r in (b"one", b"two", b"three"):
        s.append("audit", r)
    journal = tmp_path / "audit.sealed"
    journal.write_bytes(journal.read_bytes()[:-5])  # the third write never finished
    again = store(tmp_path)
    assert again.records("audit") == [b"one", b"two"]
    again.append("audit", b"three again")
    assert store(tmp_path).records("audit") == [b"one", b"two", b"three again"]


def test_sealing_keys_bind_the_code_and_refuse_tees_without_one(tmp_path: Path) -> None:
    base = {"component_key": b"k" * 32, "measurement": b"m" * 32, "purpose": TASK}
    key = sealing_key("simulated", **base)
    assert key == sealing_key("simulated", **base) and len(key) == 32
    assert key != sealing_key("simulated", **{**base, "measurement": b"n" * 32})
    assert key != sealing_key("simulated", **{**base, "component_key": b"j" * 32})
    seal = tmp_path / "_sgx_mrenclave"
    seal.write_bytes(b"\x01" * 16)
    sgx = sealing_key("sgx", **base, gramine_key=seal)
    assert sgx != key and len(sgx) == 32
    with pytest.raises(UnsupportedTee) as missing:
        sealing_key("sgx", **base, gramine_key=tmp_path / "absent")
    assert missing.value.id == "attest.sealing.unavailable"
    for tee in ("tdx", "sev-snp"):
        with pytest.raises(UnsupportedTee) as refused:
            sealing_key(tee, **base)
        assert refused.value.id == "attest.sealing.unsupported"


def leaf(i: int) -> AuditLeaf:
    return AuditLeaf(
        task_id=TASK,
        requester="transit",
        request_digest=hashlib.sha256(str(i).encode()).digest(),
        outcome="prediction.request.replayed",
        response_digest=None,
        feed_epochs={},
        at_us=i,
    )


def restored(leaves: list[AuditLeaf], batches: list[tuple[int, bytes, int]]) -> AuditLog:
    log = AuditLog(TASK, lambda root, count: 99)
    log.restore(leaves, batches)
    return log


def test_a_journal_restored_against_the_chain_serves_receipts_and_reposts_the_rest() -> None:
    leaves = [leaf(i) for i in range(7)]
    roots = [merkle_root([x.digest() for x in leaves[0:3]]), merkle_root([leaves[3].digest()])]
    chain = [(0, roots[0], 3), (1, roots[0], 3), (2, roots[1], 1)]  # batch 0 posted twice
    log = restored(leaves, chain)
    assert log.pending == 3
    receipt = log.receipt(1)
    assert receipt is not None and receipt.batch == 0 and receipt.count == 3
    assert log.receipt(5) is None
    assert log.flush() == 99 and log.pending == 0


def test_a_journal_that_does_not_match_the_chain_is_refused() -> None:
    leaves = [leaf(i) for i in range(4)]
    wrong = merkle_root([leaf(9).digest(), leaf(8).digest()])
    with pytest.raises(AuditError) as info:
        restored(leaves, [(0, wrong, 2)])
    assert info.value.id == "prediction.audit.journal_mismatch"
    with pytest.raises(AuditError):  # the chain holds more leaves than the journal
        restored(leaves[:1], [(0, merkle_root([x.digest() for x in leaves[:2]]), 2)])


def test_a_directory_in_place_of_a_sealed_file_is_refused_with_its_id(tmp_path: Path) -> None:
    s = store(tmp_path)
    (tmp_path / "model.sealed").mkdir()
    (tmp_path / "audit.sealed").mkdir()
    for read in (lambda: s.get("model"), lambda: s.records("audit")):
        with pytest.raises(SealedStateError) as refused:
            read()
        assert refused.value.id == "prediction.sealed.not_a_file"


@pytest.mark.parametrize("size", [0, 27, 1 << 24, 0xFFFFFFFF])
def test_a_corrupt_length_prefix_is_tampering_not_an_empty_journal(
    tmp_path: Path, size: int
) -> None:
    s = store(tmp_path)
    for i in range(3):
        s.append("audit", b"leaf %d" % i)
    path = tmp_path / "audit.sealed"
    raw = bytearray(path.read_bytes())
    raw[0:4] = size.to_bytes(4, "big")
    path.write_bytes(bytes(raw))
    with pytest.raises(SealedStateError) as refused:
        store(tmp_path).records("audit")
    assert refused.value.id == "prediction.sealed.tampered"
