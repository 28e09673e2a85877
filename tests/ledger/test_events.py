"""The event stream resumes from its cursor file and never delivers an event twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_world import World, build_world

from chronoseal.errors import LedgerError
from chronoseal.ledger import Consortium, EventStream, JsonRpcChain, _chain, read_events


def test_cursor_resumes_without_rescanning_or_duplicates(world: World, tmp_path: Path) -> None:
    cursor = tmp_path / "cursor.json"
    start = world.chain.block_number() + 1
    stream = EventStream(world.consortium, cursor, from_block=start)
    assert stream.poll() == []
    task_id = world.proposed_task()
    first = stream.poll()
    assert [e.name for e in first] == ["TaskProposed", "TaskStateChanged"]
    assert first[0].args["task_id"] == "0x" + task_id.hex()
    assert first[0].actor == world.keys["alpha"].address
    assert stream.poll() == []

    world.orgs["beta"].approve_task(task_id)
    resumed = EventStream(world.consortium, cursor)  # a restart: the file says where to go on
    assert resumed.next_block == world.chain.block_number()
    events = resumed.poll()
    assert [e.name for e in events] == ["TaskApproved"]
    assert json.loads(cursor.read_text())["next_block"] == world.chain.block_number() + 1

    # re-reading an overlapping range (e.g. a cursor restored from a backup) is idempotent
    again = EventStream(world.consortium, cursor, from_block=start)
    again._load(cursor)
    again.next_block = start
    assert again.poll() == []


def test_a_cursor_for_another_contract_is_refused(world: World, tmp_path: Path) -> None:
    cursor = tmp_path / "cursor.json"
    EventStream(world.consortium, cursor).poll()
    other = Consortium.deploy(
        world.chain, world.funded().key, [("solo", world.keys["alpha"].address)]
    )
    with pytest.raises(LedgerError) as info:
        EventStream(other, cursor)
    assert info.value.id == "ledger.cursor.mismatch"


def test_a_corrupt_cursor_is_an_error_not_a_rescan(world: World, tmp_path: Path) -> None:
    cursor = tmp_path / "cursor.json"
    cursor.write_text("{not json")
    with pytest.raises(LedgerError):
        EventStream(world.consortium, cursor)


@pytest.mark.integration
@pytest.mark.anvil
def test_json_rpc_reads_logs_in_chunks(anvil_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked eth_getLogs is the JSON-RPC backend's path; the embedded one reads receipts."""
    chain = JsonRpcChain(anvil_url)
    try:
        world = build_world(chain)
        whole = read_events(world.consortium)
        monkeypatch.setattr(_chain, "LOGS_CHUNK_BLOCKS", 3)
        chunked = read_events(world.consortium)
    finally:
        chain.close()
    assert chunked == whole and len(whole) > 20
