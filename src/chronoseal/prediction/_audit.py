"""The prediction runtime's audit log: every forecast and every refusal, at constant chain cost.

Each request (served or refused) becomes an :class:`AuditLeaf`. Leaves wait in an
:class:`AuditLog` until ``max_leaves`` are pending or the oldest is ``max_age`` seconds old;
then one ``post_audit_root`` transaction commits all of them, so chain cost grows with time,
not with traffic. A requester's :class:`Receipt` (leaf, inclusion proof, batch) can be
checked by :func:`verify_receipt` against the chain alone: nobody has to trust the runtime's
host to learn that a request was logged.

Encoding and hashes (SHA-256 throughout; labels differ from the data commitments', so an
audit hash can never stand in for a commitment hash or the other way round)::

    encoded(leaf) = RFC 8785 JSON of leaf.to_json()   (bytes as "0x" + lowercase hex,
                                                       response_digest null when refused)
    leaf hash     = SHA-256(0x00 ‖ "chronoseal.audit.leaf.v1" ‖ encoded(leaf))
    node          = SHA-256(0x01 ‖ left ‖ right)       (RFC 6962/9162 split: largest power
                                                       of two < n)
    root          = SHA-256(0x02 ‖ "chronoseal.audit.root.v1" ‖ u64be n ‖ tree head)

The root commits the leaf count: a plain RFC 9162 proof verifies for some other tree sizes
too (index 0 of 3 and of 4 leaves take the same path), and the count is what the chain
reports as "audited predictions".
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
import struct
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from chronoseal._decode import detail, loads_json
from chronoseal.errors import ChronosealError, LedgerError
from chronoseal.ledger import ChainEvent, ComponentSession, Consortium, read_events

HASH_LEN = 32
SERVED = "served"
AUDIT_EVENT = "AuditRootPosted"
_LEAF = b"\x00chronoseal.audit.leaf.v1"
_NODE = b"\x01"
_ROOT = b"\x02chronoseal.audit.root.v1"
_U64 = struct.Struct(">Q")
_JSON_INT_MAX = 2**53 - 1  # RFC 8785 numbers are IEEE doubles; larger ints are not canonical
_OUTCOME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_LEAF_KEYS = frozenset(
    {
        "task_id",
        "requester",
        "request_digest",
        "outcome",
        "response_digest",
        "feed_epochs",
        "at_us",
    }
)
_RECEIPT_KEYS = frozenset({"leaf", "batch", "index", "count", "root", "proof"})


class AuditError(ChronosealError):
    """The audit log, a leaf or a receipt is unusable, or a receipt does not check out.

    Ids: ``prediction.audit.*`` for the runtime's own misuse (a leaf built wrong, a
    sequence number it never issued), ``prediction.receipt.*`` for what a requester sees
    (``malformed``, ``bad_proof``, ``not_on_chain``, ``wrong_component``).
    """

    default_id = "prediction.audit.invalid"


# ---------------------------------------------------------------- small validators


def _malformed(message: str) -> AuditError:
    return AuditError(message, id="prediction.audit.malformed")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_LEN:
        raise _malformed(f"{name} must be {HASH_LEN} bytes")
    return value


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _malformed(f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _malformed(f"{name} is not valid Unicode text") from exc
    return value


def _check_uint(name: str, value: object, upper: int = _JSON_INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise _malformed(f"{name} must be an integer in 0..{upper}")
    return value


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _parse_hash(name: str, value: object) -> bytes:
    if not isinstance(value, str) or _HEX32.fullmatch(value) is None:
        raise _malformed(f"{name} must be 0x followed by 64 lowercase hex digits")
    return bytes.fromhex(value[2:])


def _parse_uint(name: str, value: object) -> int:
    return _check_uint(name, value)


def _exact_keys(what: str, obj: object, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _malformed(f"{what} must be a JSON object")
    if set(obj) != keys:
        missing, extra = sorted(keys - set(obj)), sorted(set(obj) - keys, key=str)
        raise _malformed(f"{what} has missing keys {missing} or unknown keys {extra}")
    return obj


def _as_receipt_error(exc: AuditError) -> AuditError:
    return AuditError(exc.message, id="prediction.receipt.malformed")


# ---------------------------------------------------------------- leaves


@dataclass(frozen=True)
class AuditLeaf:
    """One forecast request or refusal as the audit log records it.

    ``outcome`` is ``"served"`` (then ``response_digest`` is the 32-byte SHA-256 of the
    response) or the refusal's dotted id (then ``response_digest`` is None). Values are
    checked on construction so a leaf that exists always encodes canonically.
    """

    task_id: bytes
    requester: str
    request_digest: bytes
    outcome: str
    response_digest: bytes | None
    feed_epochs: Mapping[str, int] = field(hash=False)
    at_us: int

    def __post_init__(self) -> None:
        _check_hash("task_id", self.task_id)
        _check_text("requester", self.requester)
        _check_hash("request_digest", self.request_digest)
        _check_text("outcome", self.outcome)
        if self.outcome == SERVED:
            _check_hash("response_digest of a served request", self.response_digest)
        elif _OUTCOME.fullmatch(self.outcome) is None:
            raise _malformed(f"outcome {self.outcome!r} is neither 'served' nor a refusal id")
        elif self.response_digest is not None:
            raise _malformed("a refused request has no response_digest")
        if not isinstance(self.feed_epochs, Mapping):
            raise _malformed("feed_epochs must map feed names to epochs")
        epochs: dict[str, int] = {}
        for name, epoch in self.feed_epochs.items():
            epochs[_check_text("a feed name", name)] = _check_uint(f"epoch of {name!r}", epoch)
        # A private copy, read-only: the leaf's hash must not change after it was logged.
        object.__setattr__(
            self, "feed_epochs", types.MappingProxyType(dict(sorted(epochs.items())))
        )
        _check_uint("at_us", self.at_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": _hex(self.task_id),
            "requester": self.requester,
            "request_digest": _hex(self.request_digest),
            "outcome": self.outcome,
            "response_digest": None if self.response_digest is None else _hex(self.response_digest),
            "feed_epochs": dict(self.feed_epochs),
            "at_us": self.at_us,
        }

    @classmethod
    def from_json(cls, obj: Any) -> AuditLeaf:
        """Parse exactly what :meth:`to_json` writes; anything else is ``receipt.malformed``."""
        try:
            doc = _exact_keys("an audit leaf", obj, _LEAF_KEYS)
            response = doc["response_digest"]
            epochs = doc["feed_epochs"]
            if not isinstance(epochs, dict):
                raise _malformed("feed_epochs must be a JSON object")
            return cls(
                task_id=_parse_hash("task_id", doc["task_id"]),
                requester=_check_text("requester", doc["requester"]),
                request_digest=_parse_hash("request_digest", doc["request_digest"]),
                outcome=_check_text("outcome", doc["outcome"]),
                response_digest=None
                if response is None
                else _parse_hash("response_digest", response),
                feed_epochs=epochs,
                at_us=_parse_uint("at_us", doc["at_us"]),
            )
        except AuditError as exc:
            raise _as_receipt_error(exc) from exc

    def encoded(self) -> bytes:
        """RFC 8785 canonical JSON: any language can re-derive the hash from a receipt."""
        return rfc8785.dumps(self.to_json())

    def digest(self) -> bytes:
        """The Merkle leaf hash (domain-separated from nodes and from other chronoseal trees)."""
        return hashlib.sha256(_LEAF + self.encoded()).digest()


# ---------------------------------------------------------------- Merkle tree


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (RFC 9162 section 2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _head(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_head(leaves[:k]), _head(leaves[k:]))


def _wrap(count: int, head: bytes) -> bytes:
    return hashlib.sha256(_ROOT + _U64.pack(count) + head).digest()


def _check_hashes(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    hashes = list(leaf_hashes)
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_LEN:
            raise AuditError(
                f"every leaf hash must be {HASH_LEN} bytes", id="prediction.audit.hash_length"
            )
    return hashes


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The count-committing root of the RFC 6962 tree over ``leaf_hashes`` (0 leaves allowed,
    though the chain refuses to record an empty batch)."""
    hashes = _check_hashes(leaf_hashes)
    return _wrap(len(hashes), _head(hashes) if hashes else b"")


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), _head(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _head(leaves[:k])]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """RFC 9162 PATH(index, D[n]): the sibling hashes from the leaf up to the tree head."""
    hashes = _check_hashes(leaf_hashes)
    if not _is_int(index) or not 0 <= index < len(hashes):
        raise AuditError(
            f"leaf {index} is not in a tree of {len(hashes)}", id="prediction.audit.bad_index"
        )
    return tuple(_path(index, hashes))


def verify_inclusion(
    leaf_hash: bytes, index: int, count: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2, then the count-committing wrap; never raises on bad input."""
    if not (_is_int(index) and _is_int(count) and 0 <= index < count < 2**64):
        return False
    if not isinstance(root, bytes) or len(root) != HASH_LEN:
        return False
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_LEN:
        return False
    fn, sn, r = index, count - 1, leaf_hash
    for p in proof:
        if not isinstance(p, bytes) or len(p) != HASH_LEN or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(_wrap(count, r), root)


# ---------------------------------------------------------------- receipts


@dataclass(frozen=True)
class Receipt:
    """What a requester keeps: its leaf, where it sits in which on-chain batch, and the proof."""

    leaf: AuditLeaf
    batch: int
    index: int
    count: int
    root: bytes
    proof: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.leaf, AuditLeaf):
            raise _malformed("a receipt's leaf must be an AuditLeaf")
        _check_uint("batch", self.batch)
        _check_uint("count", self.count)
        if not 1 <= self.count or not _is_int(self.index) or not 0 <= self.index < self.count:
            raise _malformed(f"index {self.index} is not a position in a batch of {self.count}")
        _check_hash("root", self.root)
        if not isinstance(self.proof, tuple):
            raise _malformed("proof must be a tuple of hashes")
        for p in self.proof:
            _check_hash("a proof hash", p)

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf": self.leaf.to_json(),
            "batch": self.batch,
            "index": self.index,
            "count": self.count,
            "root": _hex(self.root),
            "proof": [_hex(p) for p in self.proof],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Receipt:
        """Parse exactly what :meth:`to_json` writes; anything else is ``receipt.malformed``."""
        try:
            doc = _exact_keys("a receipt", obj, _RECEIPT_KEYS)
            proof = doc["proof"]
            if not isinstance(proof, list):
                raise _malformed("proof must be a JSON array")
            return cls(
                leaf=AuditLeaf.from_json(doc["leaf"]),
                batch=_parse_uint("batch", doc["batch"]),
                index=_parse_uint("index", doc["index"]),
                count=_parse_uint("count", doc["count"]),
                root=_parse_hash("root", doc["root"]),
                proof=tuple(_parse_hash("a proof hash", p) for p in proof),
            )
        except AuditError as exc:
            if exc.id == "prediction.receipt.malformed":
                raise
            raise _as_receipt_error(exc) from exc


#: A receipt is under a kilobyte and a file of them lists one per request kept.
MAX_RECEIPT_FILE = 16 << 20


def read_receipts(path: Path) -> list[Receipt]:
    """The receipt or JSON list of receipts in ``path``, read within MAX_RECEIPT_FILE and the
    bounded decoder's depth; ``OSError`` if it cannot be read, else ``receipt.malformed``."""
    with path.open("rb") as f:
        data = f.read(MAX_RECEIPT_FILE + 1)
    try:
        doc = loads_json(data, max_bytes=MAX_RECEIPT_FILE, what=f"receipt file {path}")
    except ValueError as exc:
        raise AuditError(
            f"{path} is not a receipt: {detail(exc)}", id="prediction.receipt.malformed"
        ) from None
    return [Receipt.from_json(item) for item in (doc if isinstance(doc, list) else [doc])]


def _audit_events(
    consortium: Consortium, task_id: bytes, batch: int, events: Iterable[ChainEvent] | None
) -> list[ChainEvent]:
    wanted = _hex(task_id)
    source = read_events(consortium) if events is None else events
    return [
        e
        for e in source
        if e.name == AUDIT_EVENT
        and e.args.get("task_id") == wanted
        and e.args.get("batch") == batch
    ]


def _event_root(event: ChainEvent) -> bytes:
    value = event.args.get("root")
    return bytes.fromhex(value[2:]) if isinstance(value, str) else b""


def verify_receipt(
    receipt: Receipt, consortium: Consortium, *, events: Iterable[ChainEvent] | None = None
) -> None:
    """Check a receipt against the chain alone; raise ``prediction.receipt.*`` if it fails.

    The chain must hold an ``AuditRootPosted`` for the leaf's task with this batch number,
    root and count (``not_on_chain``), posted by the component the chain binds as the task's
    prediction runtime (``wrong_component``), and the leaf must sit at ``index`` of the tree
    with that root (``bad_proof``). Pass already-read ``events`` to avoid a chain scan.
    """
    if not isinstance(receipt, Receipt):
        raise AuditError("not a receipt", id="prediction.receipt.malformed")
    task_id = receipt.leaf.task_id
    where = f"batch {receipt.batch} of task {_hex(task_id)}"
    found = _audit_events(consortium, task_id, receipt.batch, events)
    if not found:
        raise AuditError(
            f"the chain has no audit root for {where}", id="prediction.receipt.not_on_chain"
        )
    event = found[-1]  # the contract numbers batches itself, so there is exactly one
    if (
        not hmac.compare_digest(_event_root(event), receipt.root)
        or event.args.get("count") != receipt.count
    ):
        raise AuditError(
            f"the chain's root or count for {where} differs from the receipt's",
            id="prediction.receipt.not_on_chain",
            context={"chain_root": event.args.get("root"), "chain_count": event.args.get("count")},
        )
    try:
        bound = consortium.task(task_id).prediction
    except LedgerError as exc:
        if exc.id != "ledger.task.unknown":
            raise
        raise AuditError(
            f"the chain has no task {_hex(task_id)}", id="prediction.receipt.not_on_chain"
        ) from exc
    poster = str(event.args.get("component", ""))
    if bound is None or poster.lower() != bound.lower():
        raise AuditError(
            f"{where} was posted by {poster}, not by the task's prediction runtime {bound}",
            id="prediction.receipt.wrong_component",
        )
    if not verify_inclusion(
        receipt.leaf.digest(), receipt.index, receipt.count, receipt.proof, receipt.root
    ):
        raise AuditError(
            f"the leaf is not at position {receipt.index} of {where}",
            id="prediction.receipt.bad_proof",
        )


# ---------------------------------------------------------------- the log


@dataclass(frozen=True)
class _Batch:
    number: int
    start: int
    count: int
    root: bytes


class AuditLog:
    """Thread-safe. Leaves pending until flushed; flushing posts ONE root for all pending leaves.

    ``append`` never waits for the chain: ``flush`` snapshots the pending leaves, posts
    their root outside the state lock, and only then marks them posted, so requests keep
    being logged (into the next batch) while a transaction is mined. Flushes are serialized.
    If ``post_root`` raises, nothing is marked posted; if it raised *after* the root was
    mined, the next flush posts those leaves again (logged twice, never lost).

    Memory is bounded: once more than ``retain_leaves`` posted leaves are held, the oldest
    whole batches are dropped (their roots stay on chain); a receipt asked for after that is
    refused ``prediction.receipt.expired``. Pending leaves are never dropped.
    """

    def __init__(
        self,
        task_id: bytes,
        post_root: Callable[[bytes, int], int],
        *,
        max_leaves: int = 256,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        journal: Callable[[AuditLeaf], None] | None = None,
        retain_leaves: int = 1_000_000,
    ) -> None:
        _check_hash("task_id", task_id)
        if not _is_int(retain_leaves) or retain_leaves < 1:
            raise AuditError("retain_leaves must be at least 1", id="prediction.audit.config")
        self.retain_leaves = retain_leaves
        if not _is_int(max_leaves) or max_leaves < 1:
            raise AuditError("max_leaves must be at least 1", id="prediction.audit.config")
        if not max_age > 0:
            raise AuditError("max_age must be positive", id="prediction.audit.config")
        self.task_id = task_id
        self.max_leaves = max_leaves
        self.max_age = max_age
        self._post_root = post_root
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._leaves: list[AuditLeaf] = []
        self._hashes: list[bytes] = []
        self._appended_at: list[float] = []  # clock time of each pending leaf's append
        self._posted = 0  # leaves [0, _posted) are in posted batches
        self._batches: list[_Batch] = []
        self._starts: list[int] = []
        self._journal = journal
        self._base = 0  # leaves [0, _base) were dropped from memory (their batches are on chain)
        self._batch_count = 0

    def append(self, leaf: AuditLeaf) -> int:
        """Log one leaf; returns its sequence number (0, 1, ... over the log's lifetime)."""
        if not isinstance(leaf, AuditLeaf):
            raise AuditError("only AuditLeaf values can be logged", id="prediction.audit.malformed")
        if not hmac.compare_digest(leaf.task_id, self.task_id):
            raise AuditError(
                f"a leaf of task {_hex(leaf.task_id)} in the log of task {_hex(self.task_id)}",
                id="prediction.audit.wrong_task",
            )
        digest = leaf.digest()
        now = self._clock()
        with self._lock:
            if self._journal is not None:
                self._journal(leaf)  # durable before it has a sequence number
            self._leaves.append(leaf)
            self._hashes.append(digest)
            self._appended_at.append(now)
            return self._base + len(self._leaves) - 1

    def restore(self, leaves: list[AuditLeaf], batches: list[tuple[int, bytes, int]]) -> int:
        """Take back a journal after a restart: ``leaves`` as journaled, ``batches`` the
        chain's ``(number, root, count)`` in order. Each batch's root is recomputed from the
        journal and must be the chain's (a batch posted twice after a failed flush covers
        the same leaves again); leaves past the last batch are pending again. Returns how
        many are pending."""
        if self._leaves or self._base:
            raise AuditError("restore() a fresh log only", id="prediction.audit.restore")
        hashes = [leaf.digest() for leaf in leaves]
        restored: list[_Batch] = []
        offset = 0
        for number, root, count in batches:
            if offset + count <= len(hashes) and hmac.compare_digest(
                merkle_root(hashes[offset : offset + count]), root
            ):
                restored.append(_Batch(number, offset, count, root))
                offset += count
                continue
            last = restored[-1] if restored else None
            if last is not None and last.count == count and hmac.compare_digest(last.root, root):
                continue  # the same leaves posted again: receipts use the first batch
            raise AuditError(
                f"audit batch {number} on chain ({count} leaves) is not what the journal holds "
                f"from leaf {offset}: the journal is not this runtime's, or leaves are missing",
                id="prediction.audit.journal_mismatch",
            )
        now = self._clock()
        with self._lock:
            self._leaves = list(leaves)
            self._hashes = hashes
            self._batches = restored
            self._starts = [b.start for b in restored]
            self._posted = offset
            self._batch_count = len(restored)
            self._appended_at = [now] * (len(leaves) - offset)
            self._evict()
        return len(leaves) - offset

    def due(self) -> bool:
        """True when a flush is owed: ``max_leaves`` pending, or the oldest is ``max_age`` old."""
        now = self._clock()
        with self._lock:
            pending = self._base + len(self._leaves) - self._posted
            if pending == 0:
                return False
            return pending >= self.max_leaves or now - self._appended_at[0] >= self.max_age

    def flush(self) -> int | None:
        """Post every pending leaf as one batch; the chain's batch number, or None if idle."""
        with self._flush_lock:
            with self._lock:
                start, end = self._posted, self._base + len(self._leaves)
                hashes = self._hashes[start - self._base : end - self._base]
            if not hashes:
                return None
            root = merkle_root(hashes)
            number = self._post_root(root, len(hashes))
            if not _is_int(number) or number < 0:
                raise AuditError(
                    f"post_root returned {number!r}, not a batch number",
                    id="prediction.audit.bad_batch",
                )
            with self._lock:
                self._batches.append(_Batch(number, start, len(hashes), root))
                self._starts.append(start)
                self._posted = end
                self._batch_count += 1
                del self._appended_at[: end - start]
                self._evict()
            return number

    def _evict(self) -> None:
        """Drop the oldest whole posted batches while more than ``retain_leaves`` posted
        leaves are held (called with the state lock held)."""
        while self._batches and self._posted - self._base > self.retain_leaves:
            oldest = self._batches[0]
            if oldest.start != self._base:
                break
            del self._leaves[: oldest.count]
            del self._hashes[: oldest.count]
            del self._batches[0]
            del self._starts[0]
            self._base += oldest.count

    def receipt(self, seq: int) -> Receipt | None:
        """The receipt for sequence number ``seq``; None while its batch is not posted yet."""
        with self._lock:
            if not _is_int(seq) or not 0 <= seq < self._base + len(self._leaves):
                raise AuditError(
                    f"no audit leaf with sequence number {seq}", id="prediction.audit.unknown_seq"
                )
            if seq < self._base:
                raise AuditError(
                    f"the receipt of audit leaf {seq} is no longer kept (the runtime keeps the "
                    f"last {self.retain_leaves} posted leaves); its batch root is on chain",
                    id="prediction.receipt.expired",
                )
            if seq >= self._posted:
                return None
            batch = self._batches[bisect.bisect_right(self._starts, seq) - 1]
            lo = batch.start - self._base
            hashes = self._hashes[lo : lo + batch.count]
            leaf = self._leaves[seq - self._base]
        index = seq - batch.start
        return Receipt(
            leaf=leaf,
            batch=batch.number,
            index=index,
            count=batch.count,
            root=batch.root,
            proof=inclusion_proof(hashes, index),
        )

    @property
    def batches(self) -> int:
        """Batches posted so far (one chain transaction each)."""
        with self._lock:
            return self._batch_count

    @property
    def leaves(self) -> int:
        """Leaves ever appended, posted or not."""
        with self._lock:
            return self._base + len(self._leaves)

    @property
    def pending(self) -> int:
        """Leaves not yet in a posted root."""
        with self._lock:
            return self._base + len(self._leaves) - self._posted

    def unposted(self) -> list[AuditLeaf]:
        """The leaves no posted root covers (what is lost if the runtime stops now)."""
        with self._lock:
            return self._leaves[self._posted - self._base :]


def audit_root_poster(session: ComponentSession, task_id: bytes) -> Callable[[bytes, int], int]:
    """A ``post_root`` for :class:`AuditLog`: posts through the bound prediction runtime's
    session and returns the batch number the chain assigned, read from the transaction's
    own ``AuditRootPosted`` event (a counter read before posting could race)."""
    _check_hash("task_id", task_id)
    wanted = _hex(task_id)

    def post(root: bytes, count: int) -> int:
        mined = session.post_audit_root(task_id, root, count)
        for event in read_events(session.consortium, from_block=mined.block_number):
            if (
                event.tx_hash == mined.tx_hash
                and event.name == AUDIT_EVENT
                and event.args.get("task_id") == wanted
            ):
                return int(event.args["batch"])
        raise LedgerError(
            f"transaction {mined.tx_hash} posted no {AUDIT_EVENT} event",
            id="ledger.event.missing",
        )

    return post
