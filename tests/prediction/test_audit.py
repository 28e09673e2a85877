"""Prediction audit log: Merkle proofs, batching at constant chain cost, receipts on chain."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.ledger import (
    ChainComponent,
    ChainRole,
    ChainTee,
    ComponentSession,
    Consortium,
    EmbeddedChain,
    TaskState,
    TaskView,
    read_events,
)
from chronoseal.prediction._audit import (
    AuditError,
    AuditLeaf,
    AuditLog,
    Receipt,
    audit_root_poster,
    inclusion_proof,
    merkle_root,
    verify_inclusion,
    verify_receipt,
)

TASK = hashlib.sha256(b"task").digest()


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def leaf(i: int = 0, *, task_id: bytes = TASK, outcome: str = "served") -> AuditLeaf:
    return AuditLeaf(
        task_id=task_id,
        requester="alpha",
        request_digest=h(f"request-{i}"),
        outcome=outcome,
        response_digest=h(f"response-{i}") if outcome == "served" else None,
        feed_epochs={"beta": i, "alpha": 2 * i},
        at_us=1_700_000_000_000_000 + i,
    )


def flip(value: bytes, position: int) -> bytes:
    out = bytearray(value)
    out[position % len(out)] ^= 0x01
    return bytes(out)


# ---------------------------------------------------------------- Merkle tree


def test_tree_shape_follows_rfc_6962_and_commits_the_count() -> None:
    """Five leaves split 4 + 1; the root wraps the RFC 9162 head with its label and count."""
    a, b, c, d, e = (h(x) for x in "abcde")

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    head = node(node(node(a, b), node(c, d)), e)
    expected = hashlib.sha256(
        b"\x02chronoseal.audit.root.v1" + (5).to_bytes(8, "big") + head
    ).digest()
    assert merkle_root([a, b, c, d, e]) == expected
    assert inclusion_proof([a, b, c, d, e], 2) == (d, node(a, b), e)
    assert inclusion_proof([a, b, c, d, e], 4) == (node(node(a, b), node(c, d)),)
    assert inclusion_proof([a], 0) == ()
    assert verify_inclusion(a, 0, 1, (), merkle_root([a]))


def test_every_position_of_every_small_tree_verifies_and_only_there() -> None:
    hashes = [h(f"leaf-{i}") for i in range(70)]
    for n in range(1, 71):
        root = merkle_root(hashes[:n])
        for index in range(n):
            proof = inclusion_proof(hashes[:n], index)
            assert verify_inclusion(hashes[index], index, n, proof, root)
            if n <= 20:
                for other in range(n + 3):
                    if other != index:
                        assert not verify_inclusion(hashes[index], other, n, proof, root)
                    if other != n:
                        assert not verify_inclusion(hashes[index], index, other, proof, root)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_proofs_verify_and_any_tampering_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70), label="count")
    seed = data.draw(st.binary(min_size=1, max_size=8), label="seed")
    hashes = [hashlib.sha256(seed + i.to_bytes(2, "big")).digest() for i in range(n)]
    index = data.draw(st.integers(0, n - 1), label="index")
    root = merkle_root(hashes)
    proof = inclusion_proof(hashes, index)
    leaf_hash = hashes[index]
    assert verify_inclusion(leaf_hash, index, n, proof, root)

    position = data.draw(st.integers(0, 31), label="byte")
    assert not verify_inclusion(flip(leaf_hash, position), index, n, proof, root)
    assert not verify_inclusion(leaf_hash, index, n, proof, flip(root, position))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="proof hash")
        tampered = list(proof)
        tampered[which] = flip(tampered[which], position)
        assert not verify_inclusion(leaf_hash, index, n, tampered, root)
        assert not verify_inclusion(leaf_hash, index, n, proof[:-1], root)
    assert not verify_inclusion(leaf_hash, index, n, [*proof, h("extra")], root)
    other_index = data.draw(st.integers(-2, 2 * n).filter(lambda i: i != index), label="other")
    assert not verify_inclusion(leaf_hash, other_index, n, proof, root)
    other_count = data.draw(st.integers(-1, 2 * n + 2).filter(lambda c: c != n), label="n'")
    assert not verify_inclusion(leaf_hash, index, other_count, proof, root)


def test_bad_inputs_are_refused_not_crashed() -> None:
    hashes = [h("a"), h("b")]
    root = merkle_root(hashes)
    proof = inclusion_proof(hashes, 0)
    assert not verify_inclusion(h("a")[:31], 0, 2, proof, root)
    assert not verify_inclusion(h("a"), 0, 2, [proof[0][:31]], root)
    assert not verify_inclusion(h("a"), 0, 2, proof, root[:31])
    assert not verify_inclusion(h("a"), True, 2, proof, root)
    with pytest.raises(AuditError) as info:
        merkle_root([h("a"), b"short"])
    assert info.value.id == "prediction.audit.hash_length"
    with pytest.raises(AuditError) as info:
        inclusion_proof(hashes, 2)
    assert info.value.id == "prediction.audit.bad_index"


# ---------------------------------------------------------------- leaves and receipts


def test_leaf_encoding_is_rfc_8785_json_with_a_labelled_hash() -> None:
    item = leaf(1, outcome="prediction.request.not_recipient")
    encoded = (
        '{"at_us":1700000000000001,"feed_epochs":{"alpha":2,"beta":1},'
        f'"outcome":"prediction.request.not_recipient","request_digest":"0x{h("request-1").hex()}",'
        f'"requester":"alpha","response_digest":null,"task_id":"0x{TASK.hex()}"}}'
    ).encode()
    assert item.encoded() == encoded
    assert item.digest() == hashlib.sha256(b"\x00chronoseal.audit.leaf.v1" + encoded).digest()
    assert item.digest() != leaf(1).digest()


def test_leaf_is_immutable_after_logging() -> None:
    epochs = {"beta": 1}
    item = AuditLeaf(TASK, "", h("r"), "served", h("s"), epochs, 0)
    before = item.digest()
    epochs["beta"] = 2
    assert item.digest() == before
    with pytest.raises(TypeError):
        item.feed_epochs["beta"] = 3  # type: ignore[index]
    assert hash(item) == hash(AuditLeaf(TASK, "", h("r"), "served", h("s"), {"beta": 1}, 0))


@pytest.mark.parametrize(
    "changes",
    [
        {"task_id": b"\x00" * 31},
        {"request_digest": "0x" + "00" * 32},
        {"response_digest": None},
        {"outcome": "prediction.request.not_recipient"},
        {"outcome": "refused"},
        {"outcome": ""},
        {"feed_epochs": {"beta": -1}},
        {"feed_epochs": {"beta": True}},
        {"feed_epochs": {1: 1}},
        {"at_us": 2**53},
        {"at_us": 1.5},
        {"requester": "\ud800"},
    ],
)
def test_a_malformed_leaf_cannot_be_built(changes: dict[str, Any]) -> None:
    with pytest.raises(AuditError) as info:
        dataclasses.replace(leaf(), **changes)
    assert info.value.id == "prediction.audit.malformed"


leaves_strategy = st.builds(
    AuditLeaf,
    task_id=st.binary(min_size=32, max_size=32),
    requester=st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    request_digest=st.binary(min_size=32, max_size=32),
    outcome=st.just("served"),
    response_digest=st.binary(min_size=32, max_size=32),
    feed_epochs=st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
        st.integers(0, 2**53 - 1),
        max_size=4,
    ),
    at_us=st.integers(0, 2**53 - 1),
) | st.builds(
    AuditLeaf,
    task_id=st.binary(min_size=32, max_size=32),
    requester=st.just(""),
    request_digest=st.binary(min_size=32, max_size=32),
    outcome=st.sampled_from(["prediction.request.not_member", "prediction.feed.stale"]),
    response_digest=st.none(),
    feed_epochs=st.just({}),
    at_us=st.integers(0, 2**53 - 1),
)


@settings(max_examples=100, deadline=None)
@given(leaves_strategy)
def test_leaf_json_round_trips_through_text(item: AuditLeaf) -> None:
    again = AuditLeaf.from_json(json.loads(json.dumps(item.to_json())))
    assert again == item
    assert again.encoded() == item.encoded() and again.digest() == item.digest()


def receipt_json() -> dict[str, Any]:
    hashes = [leaf(i).digest() for i in range(5)]
    return Receipt(
        leaf=leaf(3),
        batch=7,
        index=3,
        count=5,
        root=merkle_root(hashes),
        proof=inclusion_proof(hashes, 3),
    ).to_json()


def test_receipt_json_round_trips() -> None:
    doc = receipt_json()
    receipt = Receipt.from_json(json.loads(json.dumps(doc)))
    assert receipt.to_json() == doc
    assert receipt.leaf == leaf(3) and receipt.batch == 7 and len(receipt.proof) == 3
    assert verify_inclusion(
        receipt.leaf.digest(), receipt.index, receipt.count, receipt.proof, receipt.root
    )


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(*path: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


@pytest.mark.parametrize(
    "mutate",
    [
        _drop("proof"),
        _drop("leaf", "at_us"),
        _set(("extra",), 1),
        _set(("leaf", "extra"), 1),
        _set(("batch",), "7"),
        _set(("batch",), -1),
        _set(("batch",), 7.0),
        _set(("index",), True),
        _set(("index",), 5),
        _set(("count",), 0),
        _set(("root",), "0x" + "ab" * 31),
        _set(("root",), "0x" + "AB" * 32),
        _set(("root",), "ab" * 32),
        _set(("proof",), "0x" + "00" * 32),
        _set(("proof",), [None]),
        _set(("leaf",), []),
        _set(("leaf", "task_id"), None),
        _set(("leaf", "requester"), 3),
        _set(("leaf", "response_digest"), None),
        _set(("leaf", "feed_epochs"), [["alpha", 1]]),
        _set(("leaf", "feed_epochs"), {"alpha": "1"}),
        _set(("leaf", "feed_epochs"), {"alpha": False}),
        _set(("leaf", "at_us"), -5),
        _set(("leaf", "outcome"), None),
    ],
)
def test_receipt_parsing_is_strict(mutate: Any) -> None:
    doc = receipt_json()
    mutate(doc)
    with pytest.raises(AuditError) as info:
        Receipt.from_json(doc)
    assert info.value.id == "prediction.receipt.malformed"


@pytest.mark.parametrize("obj", [None, [], "receipt", 3])
def test_non_objects_are_malformed(obj: Any) -> None:
    for parse in (Receipt.from_json, AuditLeaf.from_json):
        with pytest.raises(AuditError) as info:
            parse(obj)
        assert info.value.id == "prediction.receipt.malformed"


# ---------------------------------------------------------------- the log, with a fake chain


class FakeChain:
    """Records every post; numbers batches from ``first``; can be made to fail."""

    def __init__(self, first: int = 0) -> None:
        self.posts: list[tuple[bytes, int]] = []
        self.next = first
        self.fail = False

    def __call__(self, root: bytes, count: int) -> int:
        if self.fail:
            raise ConnectionError("node unreachable")
        self.posts.append((root, count))
        self.next += 1
        return self.next - 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_n_leaves_cost_exactly_one_post() -> None:
    chain = FakeChain(first=4)
    log = AuditLog(TASK, chain, max_leaves=10, clock=FakeClock())
    for i in range(9):
        assert log.append(leaf(i)) == i
        assert not log.due()
    log.append(leaf(9))
    assert log.due() and log.pending == 10 and chain.posts == []
    assert log.flush() == 4
    assert chain.posts == [(merkle_root([leaf(i).digest() for i in range(10)]), 10)]
    assert (log.batches, log.leaves, log.pending, log.unposted()) == (1, 10, 0, [])
    assert not log.due()
    for seq in range(10):
        receipt = log.receipt(seq)
        assert receipt is not None
        assert (receipt.batch, receipt.index, receipt.count) == (4, seq, 10)
        assert receipt.root == chain.posts[0][0] and receipt.leaf == leaf(seq)
        assert verify_inclusion(leaf(seq).digest(), seq, 10, receipt.proof, receipt.root)


def test_age_triggers_a_flush_with_few_leaves() -> None:
    clock = FakeClock()
    log = AuditLog(TASK, FakeChain(), max_leaves=256, max_age=5.0, clock=clock)
    assert not log.due()
    log.append(leaf(0))
    clock.now += 3.0
    log.append(leaf(1))
    clock.now += 1.999
    assert not log.due()
    clock.now += 0.001
    assert log.due()
    assert log.flush() == 0
    clock.now += 100
    assert not log.due()  # nothing pending, however long ago the last flush was
    log.append(leaf(2))
    assert not log.due()  # the age is the oldest *pending* leaf's


def test_flush_with_nothing_pending_posts_nothing() -> None:
    chain = FakeChain()
    log = AuditLog(TASK, chain)
    assert log.flush() is None
    log.append(leaf(0))
    assert log.flush() == 0
    assert log.flush() is None
    assert len(chain.posts) == 1 and log.batches == 1


def test_a_failed_post_keeps_every_leaf_for_the_next_flush() -> None:
    chain = FakeChain()
    log = AuditLog(TASK, chain, max_leaves=2, clock=FakeClock())
    log.append(leaf(0))
    log.append(leaf(1))
    chain.fail = True
    with pytest.raises(ConnectionError):
        log.flush()
    assert (log.pending, log.batches, chain.posts) == (2, 0, [])
    assert log.unposted() == [leaf(0), leaf(1)]
    assert log.receipt(0) is None and log.due()
    log.append(leaf(2))
    chain.fail = False
    assert log.flush() == 0
    assert chain.posts == [(merkle_root([leaf(i).digest() for i in range(3)]), 3)]
    receipt = log.receipt(2)
    assert receipt is not None and (receipt.index, receipt.count) == (2, 3)


def test_receipts_only_after_posting_and_sequence_numbers_span_batches() -> None:
    chain = FakeChain(first=10)
    log = AuditLog(TASK, chain)
    seqs = [log.append(leaf(i)) for i in range(3)]
    assert [log.receipt(s) for s in seqs] == [None, None, None]
    log.flush()
    later = [log.append(leaf(i)) for i in range(3, 5)]
    assert later == [3, 4] and log.receipt(3) is None
    log.flush()
    first, second = log.receipt(1), log.receipt(4)
    assert first is not None and (first.batch, first.index, first.count) == (10, 1, 3)
    assert second is not None and (second.batch, second.index, second.count) == (11, 1, 2)
    for bad in (5, -1):
        with pytest.raises(AuditError) as info:
            log.receipt(bad)
        assert info.value.id == "prediction.audit.unknown_seq"


def test_a_leaf_of_another_task_is_refused() -> None:
    log = AuditLog(TASK, FakeChain())
    with pytest.raises(AuditError) as info:
        log.append(leaf(0, task_id=h("other task")))
    assert info.value.id == "prediction.audit.wrong_task"
    assert log.leaves == 0


def test_appends_do_not_wait_for_the_chain() -> None:
    """While a root is being mined, new requests are logged into the next batch."""
    entered, release = threading.Event(), threading.Event()
    posts: list[int] = []

    def slow_chain(root: bytes, count: int) -> int:
        entered.set()
        assert release.wait(10)
        posts.append(count)
        return len(posts) - 1

    log = AuditLog(TASK, slow_chain)
    log.append(leaf(0))
    log.append(leaf(1))
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    assert entered.wait(10)
    assert log.append(leaf(2)) == 2  # would deadlock if append waited for the post
    assert log.pending == 3 and log.receipt(0) is None
    release.set()
    flusher.join(10)
    assert posts == [2] and log.pending == 1 and log.unposted() == [leaf(2)]
    assert log.flush() == 1 and posts == [2, 1]


def test_bad_configuration_is_refused() -> None:
    for kwargs in ({"max_leaves": 0}, {"max_age": 0.0}):
        with pytest.raises(AuditError) as info:
            AuditLog(TASK, FakeChain(), **kwargs)
        assert info.value.id == "prediction.audit.config"
    log = AuditLog(TASK, lambda root, count: -1)
    log.append(leaf(0))
    with pytest.raises(AuditError) as info:
        log.flush()
    assert info.value.id == "prediction.audit.bad_batch" and log.pending == 1


# ---------------------------------------------------------------- against a real chain


@dataclasses.dataclass
class Served:
    chain: EmbeddedChain
    consortium: Consortium
    prediction: ComponentSession
    task_id: bytes


def _funded(chain: EmbeddedChain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.fund(account.address, 10 * 10**18)
    return account


@pytest.fixture(scope="module")
def served_base() -> Iterator[Served]:
    """A consortium of two with one task driven to Serving through the real contract."""
    chain = EmbeddedChain()
    keys = {name: _funded(chain) for name in ("alpha", "beta")}
    consortium = Consortium.deploy(
        chain, _funded(chain).key, [(n, k.address) for n, k in keys.items()]
    )
    orgs = {n: consortium.as_org(n, k.key) for n, k in keys.items()}
    analysis = consortium.as_component(_funded(chain).key)
    prediction = consortium.as_component(_funded(chain).key)
    pins = [
        (ChainComponent.ANALYSIS, ChainTee.SIMULATED, h("analysis-code")),
        (ChainComponent.PREDICTION, ChainTee.SIMULATED, h("prediction-code")),
    ]
    for kind, tee, digest in pins:
        orgs["alpha"].propose_measurement(kind, tee, digest)
        orgs["beta"].approve_measurement(kind, tee, digest)
    task_id = h("audited task")
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    parties = [
        ("alpha", ChainRole.DATA_PROVIDER | ChainRole.RESULT_RECIPIENT),
        ("beta", ChainRole.DATA_PROVIDER),
    ]
    orgs["alpha"].propose_task(task_id, parties, pins, now + 86400)
    for org in orgs.values():
        org.approve_task(task_id)
    evidence = h("analysis-evidence")
    analysis.post_attestation(
        task_id, ChainComponent.ANALYSIS, ChainTee.SIMULATED, pins[0][2], evidence, h("tls-a")
    )
    for org in orgs.values():
        org.acknowledge_attestation(task_id, evidence, analysis.address)
    for name, org in orgs.items():
        org.post_gateway_commitment(task_id, h(f"data-{name}"))
        analysis.post_runtime_commitment(task_id, name, h(f"data-{name}"))
    analysis.post_model_commitment(task_id, h("model"), h("metrics"))
    p_evidence = h("prediction-evidence")
    prediction.post_attestation(
        task_id, ChainComponent.PREDICTION, ChainTee.SIMULATED, pins[1][2], p_evidence, h("tls-p")
    )
    analysis.acknowledge_prediction(task_id, p_evidence, prediction.address)
    prediction.post_prediction_model_commitment(task_id, h("model"))
    assert consortium.task_state(task_id) is TaskState.SERVING
    yield Served(chain, consortium, prediction, task_id)
    chain.close()


@pytest.fixture
def served(served_base: Served) -> Iterator[Served]:
    snapshot = served_base.chain.snapshot()
    yield served_base
    served_base.chain.revert(snapshot)


def chain_leaf(task_id: bytes, i: int) -> AuditLeaf:
    refused = i % 3 == 2
    return AuditLeaf(
        task_id=task_id,
        requester="" if refused else "alpha",
        request_digest=h(f"req-{i}"),
        outcome="prediction.request.not_member" if refused else "served",
        response_digest=None if refused else h(f"resp-{i}"),
        feed_epochs={} if refused else {"alpha": i, "beta": i},
        at_us=1_700_000_000_000_000 + i,
    )


def test_receipts_verify_against_the_chain_and_tampering_is_named(served: Served) -> None:
    c, task_id = served.consortium, served.task_id
    log = AuditLog(task_id, audit_root_poster(served.prediction, task_id), max_leaves=4)
    block = served.chain.block_number()
    for i in range(4):
        log.append(chain_leaf(task_id, i))
    assert log.due() and log.flush() == 0
    for i in range(4, 7):
        log.append(chain_leaf(task_id, i))
    assert log.flush() == 1
    assert served.chain.block_number() == block + 2  # one transaction per batch
    view = c.task(task_id)
    assert (view.audit_batches, view.audited_predictions) == (2, 7)

    events = read_events(c)
    receipts = [log.receipt(seq) for seq in range(7)]
    for receipt in receipts:
        assert receipt is not None
        # the requester's path: JSON out of the runtime, parsed, checked against the chain
        verify_receipt(Receipt.from_json(json.loads(json.dumps(receipt.to_json()))), c)
    first, last = receipts[0], receipts[6]
    assert first is not None and last is not None
    assert (first.batch, last.batch, last.index, last.count) == (0, 1, 2, 3)

    def refused(receipt: Receipt, refusal: str) -> None:
        with pytest.raises(AuditError) as info:
            verify_receipt(receipt, c, events=events)
        assert info.value.id == refusal, info.value

    # a self-consistent forgery: a valid proof in a tree that was never posted
    forged = [chain_leaf(task_id, 100 + i).digest() for i in range(3)]
    refused(
        dataclasses.replace(
            last,
            leaf=chain_leaf(task_id, 100),
            index=0,
            root=merkle_root(forged),
            proof=inclusion_proof(forged, 0),
        ),
        "prediction.receipt.not_on_chain",
    )
    refused(dataclasses.replace(first, root=flip(first.root, 0)), "prediction.receipt.not_on_chain")
    refused(dataclasses.replace(first, batch=1), "prediction.receipt.not_on_chain")
    refused(dataclasses.replace(first, batch=2), "prediction.receipt.not_on_chain")
    refused(dataclasses.replace(first, count=5), "prediction.receipt.not_on_chain")
    refused(
        dataclasses.replace(first, leaf=dataclasses.replace(first.leaf, task_id=h("no task"))),
        "prediction.receipt.not_on_chain",
    )
    refused(
        dataclasses.replace(first, leaf=dataclasses.replace(first.leaf, requester="beta")),
        "prediction.receipt.bad_proof",
    )
    refused(
        dataclasses.replace(last, leaf=dataclasses.replace(last.leaf, at_us=last.leaf.at_us + 1)),
        "prediction.receipt.bad_proof",
    )
    refused(dataclasses.replace(first, index=1), "prediction.receipt.bad_proof")
    refused(
        dataclasses.replace(first, proof=(flip(first.proof[0], 5), *first.proof[1:])),
        "prediction.receipt.bad_proof",
    )
    refused(dataclasses.replace(first, proof=first.proof[:-1]), "prediction.receipt.bad_proof")


class RebindingView(Consortium):
    """The real consortium, except that it reports another address as the bound runtime.

    The contract lets only the bound prediction runtime post audit roots, so a root from
    another component cannot be made on chain; this exercises the check that would catch it.
    """

    def __init__(self, real: Consortium, prediction: str) -> None:
        super().__init__(real.chain, real.address, deploy_block=real.deploy_block)
        self._prediction = prediction

    def task(self, task_id: bytes | str) -> TaskView:
        return dataclasses.replace(super().task(task_id), prediction=self._prediction)


def test_a_root_not_posted_by_the_bound_runtime_is_refused(served: Served) -> None:
    c, task_id = served.consortium, served.task_id
    log = AuditLog(task_id, audit_root_poster(served.prediction, task_id))
    log.append(chain_leaf(task_id, 0))
    log.flush()
    receipt = log.receipt(0)
    assert receipt is not None
    verify_receipt(receipt, c)
    other = Account.create().address
    with pytest.raises(AuditError) as info:
        verify_receipt(receipt, RebindingView(c, other))
    assert info.value.id == "prediction.receipt.wrong_component"


def test_the_log_keeps_a_bounded_number_of_posted_leaves_and_says_when_one_expired() -> None:
    """Memory is bounded by whole batches: old receipts expire with a clear id, recent and
    pending ones are unaffected, sequence numbers never restart."""
    posted: list[tuple[bytes, int]] = []

    def post(root: bytes, count: int) -> int:
        posted.append((root, count))
        return len(posted) - 1

    log = AuditLog(TASK, post, retain_leaves=4)
    for batch in range(4):
        for i in range(3):
            log.append(leaf(batch * 3 + i))
        log.flush()
    pending = log.append(leaf(99))
    assert log.leaves == 13 and log.batches == 4 and log.pending == 1
    with pytest.raises(AuditError) as expired:
        log.receipt(0)
    assert expired.value.id == "prediction.receipt.expired"
    recent = log.receipt(11)
    assert recent is not None and recent.batch == 3
    assert verify_inclusion(
        recent.leaf.digest(), recent.index, recent.count, recent.proof, recent.root
    )
    assert log.receipt(pending) is None
    assert len(log.unposted()) == 1
