"""Decoded contract events with a persisted block cursor, a task timeline and chain stats."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from web3 import Web3

from chronoseal.errors import LedgerError
from chronoseal.ledger._chain import ChainBackend, RawLog
from chronoseal.ledger._consortium import Bytes32Like, Consortium, as_bytes32
from chronoseal.ledger._errors import map_chain_errors

SEEN_WINDOW_BLOCKS = 64


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event; ``(block_hash, log_index)`` identifies it uniquely.

    ``args`` holds JSON-friendly values: bytes as 0x-hex, addresses checksummed. ``actor``
    is the address that sent the transaction (a relayer for signed approvals).
    """

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    name: str
    args: dict[str, Any]
    actor: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.block_hash, self.log_index)


class EventDecoder:
    """Decodes the consortium's logs from the ABI (topic 0 -> event)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._events: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") != "event":
                continue
            types = ",".join(i["type"] for i in entry["inputs"])
            self._events[bytes(Web3.keccak(text=f"{entry['name']}({types})"))] = entry

    def decode(self, log: RawLog) -> ChainEvent:
        if not log.topics or log.topics[0] not in self._events:
            raise LedgerError(
                f"log {log.tx_hash}#{log.log_index} is not a consortium event",
                id="ledger.event.unknown",
            )
        entry = self._events[log.topics[0]]
        indexed = [i for i in entry["inputs"] if i["indexed"]]
        plain = [i for i in entry["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for spec, topic in zip(indexed, log.topics[1:], strict=True):
            (value,) = abi_decode([spec["type"]], topic)
            args[spec["name"]] = _jsonable(spec["type"], value)
        values = abi_decode([i["type"] for i in plain], log.data)
        for spec, value in zip(plain, values, strict=True):
            args[spec["name"]] = _jsonable(spec["type"], value)
        return ChainEvent(
            block_number=log.block_number,
            block_hash=log.block_hash,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
            name=str(entry["name"]),
            args=args,
            actor=log.sender,
        )


def _jsonable(abi_type: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return value


class EventStream:
    """New consortium events since the last call, resumable from a cursor file.

    The cursor stores the next block to read and the ids of events already delivered in
    the most recent blocks, so a restart neither re-scans from the deployment block nor
    delivers an event twice.
    """

    def __init__(
        self,
        consortium: Consortium,
        cursor_path: Path | None = None,
        *,
        from_block: int | None = None,
        confirmations: int | None = None,
    ) -> None:
        self.consortium = consortium
        # events in the newest blocks may still be reorganised away: act on them later
        self.confirmations = (
            consortium.chain.confirmations if confirmations is None else confirmations
        )
        self.cursor_path = cursor_path
        self._decoder = EventDecoder(consortium.artifact.abi)
        self.next_block = consortium.deploy_block if from_block is None else from_block
        self._seen: dict[tuple[str, int], int] = {}
        if cursor_path is not None and cursor_path.exists():
            self._load(cursor_path)

    def _load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            contract, chain_id = str(state["contract"]), int(state["chain_id"])
            next_block = int(state["next_block"])
            seen = {(str(h), int(i)): int(b) for h, i, b in state["seen"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"event cursor {path} is unreadable: {exc}") from exc
        here = (self.consortium.address, self.consortium.chain.chain_id)
        if (contract, chain_id) != here:
            raise LedgerError(
                f"event cursor {path} belongs to {contract} on chain {chain_id}, "
                f"not {here[0]} on chain {here[1]}; delete it or use another path",
                id="ledger.cursor.mismatch",
            )
        self.next_block, self._seen = next_block, seen

    def _save(self) -> None:
        if self.cursor_path is None:
            return
        state = {
            "contract": self.consortium.address,
            "chain_id": self.consortium.chain.chain_id,
            "next_block": self.next_block,
            "seen": [[h, i, b] for (h, i), b in sorted(self._seen.items(), key=lambda x: x[1])],
        }
        tmp = self.cursor_path.with_suffix(self.cursor_path.suffix + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.cursor_path)

    def poll(self) -> list[ChainEvent]:
        """Read every settled block since the cursor (``confirmations`` blocks deep), return
        new events, then advance the cursor. The cursor is a block number, the same on every
        node of the chain, so it survives a switch to another member's node."""
        latest = self.consortium.chain.block_number() - self.confirmations
        if latest < self.next_block:
            return []
        raw = self.consortium.chain.logs(self.consortium.address, self.next_block, latest)
        fresh = []
        for log in raw:
            event = self._decoder.decode(log)
            if event.key in self._seen:
                continue
            self._seen[event.key] = event.block_number
            fresh.append(event)
        self.next_block = latest + 1
        horizon = latest - SEEN_WINDOW_BLOCKS
        self._seen = {k: b for k, b in self._seen.items() if b > horizon}
        self._save()
        return fresh

    def __iter__(self) -> Iterator[ChainEvent]:
        """One pass over the events not yet delivered."""
        return iter(self.poll())


def read_events(consortium: Consortium, from_block: int | None = None) -> list[ChainEvent]:
    """Every consortium event from ``from_block`` (default: deployment) to the latest block.

    Reads to the head (no confirmations): the audit and the explorer show what the node
    has now; agents that act on events use an ``EventStream``, which waits for them."""
    return EventStream(consortium, from_block=from_block, confirmations=0).poll()


def task_timeline(
    consortium: Consortium,
    task_id: Bytes32Like,
    events: Iterable[ChainEvent] | None = None,
) -> list[ChainEvent]:
    """The events of one task in chain order (pass already-read ``events`` to avoid a scan)."""
    wanted = "0x" + as_bytes32(task_id).hex()
    source = read_events(consortium) if events is None else events
    return [e for e in source if e.args.get("task_id") == wanted]


@dataclass(frozen=True)
class ChainStats:
    """Chain activity read back from blocks, for the demo's summary."""

    kind: str
    chain_id: int
    blocks: int
    transactions: int
    gas_used: int


def chain_stats(chain: ChainBackend, from_block: int = 0) -> ChainStats:
    """Count blocks, transactions and gas from ``from_block`` to the latest block."""
    latest = chain.block_number()
    transactions = gas = 0
    with map_chain_errors("eth_getBlockByNumber"):
        for number in range(from_block, latest + 1):
            block = chain.w3.eth.get_block(number)
            transactions += len(block["transactions"])
            gas += int(block["gasUsed"])
    return ChainStats(
        kind=chain.kind,
        chain_id=chain.chain_id,
        blocks=latest - from_block + 1,
        transactions=transactions,
        gas_used=gas,
    )
