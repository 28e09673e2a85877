"""Each page's content as one JSON-friendly dict, read from the event cache and the contract.

The HTML templates render exactly these dicts and the JSON API returns them, so the two can
never disagree. Names come from the events (``MemberAdded``, ``KeyAdded``,
``AttestationPosted``); current state (task states, measurement status, proposals) from the
contract's views.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from eth_abi.abi import encode as abi_encode
from web3 import Web3
from web3.exceptions import Web3Exception

from chronoseal.errors import ChainUnavailable, LedgerError
from chronoseal.explorer._cache import ZERO_ORG, EventCache
from chronoseal.explorer._errors import ExplorerError, NotConsortium
from chronoseal.ledger import (
    ChainComponent,
    ChainEvent,
    ChainRole,
    ChainTee,
    Consortium,
    ProposalKind,
    TaskState,
    TaskView,
    map_chain_errors,
    measurement_id,
    org_id,
)

MAX_PARAM = 200
#: The EIP-712 domain type the contract hashes (``DOMAIN_TYPEHASH`` in Consortium.vy).
EIP712_DOMAIN = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
#: A task page lists at most this many audit batches (the counts cover all of them).
MAX_BATCHES_SHOWN = 200
MAX_ACTOR_EVENTS = 100


# ------------------------------------------------------------------ parameters


def _shown(text: str) -> str:
    """A parameter as it may appear in a message: bounded, never longer than 80 characters."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def parse_hex32(text: str, what: str, refusal: str) -> str:
    """``0x`` + 64 hex digits, lower-cased; anything else is a 400 with ``refusal`` as id."""
    if len(text) > MAX_PARAM or not _HEX32.fullmatch(text):
        raise ExplorerError(
            f"{what} must be 0x followed by 64 hex digits, got {_shown(text)} "
            f"({len(text)} characters)",
            id=refusal,
            status=400,
        )
    return text.lower()


def parse_address(text: str) -> str:
    """A 20-byte hex address (any case), checksummed; anything else is a 400."""
    if len(text) > MAX_PARAM or not _ADDRESS.fullmatch(text):
        raise ExplorerError(
            f"an address must be 0x followed by 40 hex digits, got {_shown(text)}",
            id="explorer.address.malformed",
            status=400,
        )
    return Web3.to_checksum_address(text.lower())


# ------------------------------------------------------------------ the contract


def check_consortium(consortium: Consortium) -> bool:
    """Refuse an address that holds no chronoseal consortium; True if its code is this build's.

    Code that differs from the committed artifact is still accepted when the contract
    computes chronoseal's EIP-712 domain for its own address (another release of it).
    """
    where = f"{consortium.address} on chain {consortium.chain.chain_id}"
    with map_chain_errors("eth_getCode"):
        code = bytes(consortium.chain.w3.eth.get_code(consortium.address))
    if not code:
        raise NotConsortium(f"there is no contract at {where}: not a chronoseal consortium")
    if code.hex() == consortium.artifact.bytecode_runtime.removeprefix("0x").lower():
        return True
    try:
        separator = bytes(consortium.call("domain_separator"))
        consortium.call("member_list")
    except (LedgerError, Web3Exception, ValueError) as exc:
        if isinstance(exc, ChainUnavailable):
            raise
        raise NotConsortium(
            f"the contract at {where} is not a chronoseal consortium (its code is not this "
            f"build's and it does not answer the consortium's views)"
        ) from exc
    if separator != _domain_separator(consortium):
        raise NotConsortium(
            f"the contract at {where} is not a chronoseal consortium (its EIP-712 domain is "
            f"not chronoseal's)"
        )
    return False


def _domain_separator(consortium: Consortium) -> bytes:
    return bytes(
        Web3.keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    Web3.keccak(text=EIP712_DOMAIN),
                    Web3.keccak(text="chronoseal"),
                    Web3.keccak(text="1"),
                    consortium.chain.chain_id,
                    consortium.address,
                ],
            )
        )
    )


# ------------------------------------------------------------------ helpers


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


# An event carries the chain's integer codes; one this build does not know is shown as is.


def _kind(value: int) -> str:
    """The component's name (spec's vocabulary) for a chain code; an unknown code as is."""
    try:
        return ChainComponent(value).component.value
    except ValueError:
        return str(value)


def _tee(value: int) -> str:
    """The TEE's name (spec's vocabulary) for a chain code; an unknown code as is."""
    try:
        return ChainTee(value).tee.value
    except ValueError:
        return str(value)


def _state(value: int) -> str:
    try:
        return TaskState(value).name.capitalize()
    except ValueError:
        return str(value)


def _whole(value: str | None) -> str:
    # Whole: the /api serves these sentences; the pages shorten them with ``short_hex``.
    return "—" if value is None else value


def _role_names(role: ChainRole) -> list[str]:
    out = []
    if role & ChainRole.DATA_PROVIDER:
        out.append("data provider")
    if role & ChainRole.RESULT_RECIPIENT:
        out.append("result recipient")
    return out


def _event_ref(event: ChainEvent, cache: EventCache) -> dict[str, Any]:
    return {
        "block": event.block_number,
        "tx_hash": event.tx_hash,
        "actor": event.actor,
        "actor_name": cache.index.actor(event.actor),
    }


def latest_time(consortium: Consortium) -> int:
    with map_chain_errors("eth_getBlockByNumber"):
        return int(consortium.chain.w3.eth.get_block("latest")["timestamp"])


# ------------------------------------------------------------------ timeline


def describe(event: ChainEvent, cache: EventCache) -> tuple[str, str]:
    """(category, one-sentence summary) of a task event, names resolved from the events."""
    a, index = event.args, cache.index
    org = index.org(a["org"]) if "org" in a else ""
    name = event.name
    if name == "TaskProposed":
        return "state", (
            f"{org} proposed the task: {a['required']} approvals required, "
            f"{a['providers']} data providers, deadline {_iso(int(a['deadline']))}"
        )
    if name == "TaskApproved":
        text = f"{org} approved ({a['approvals']}/{a['required']})"
        if a.get("relayed"):
            text += f" — EIP-712 signature relayed by {index.actor(a['actor'])} ({a['actor']})"
        return "approval", text
    if name == "TaskStateChanged":
        by = f"by {org}" if a["org"] != ZERO_ORG else f"by {index.actor(a['actor'])}"
        return "state", f"{_state(a['from_state'])} → {_state(a['to_state'])} ({by})"
    if name == "AttestationPosted":
        return "attestation", (
            f"{_kind(a['kind'])} runtime {a['component']} posted its attestation: "
            f"{_tee(a['tee'])} measurement {_whole(a['measurement'])}, evidence "
            f"{_whole(a['evidence'])}, TLS key {_whole(a['tls_key'])}"
        )
    if name == "AttestationAcknowledged":
        if a["kind"] == ChainComponent.PREDICTION:
            return "attestation", (
                "the analysis runtime acknowledged the prediction runtime's attestation "
                f"(evidence {_whole(a['evidence'])}) and handed the model over"
            )
        return "attestation", (
            f"{org} acknowledged the analysis attestation (evidence {_whole(a['evidence'])}, "
            f"{a['acks']}/{a['required']})"
        )
    if name == "ComponentBound":
        return "attestation", f"{_kind(a['kind'])} runtime {a['component']} bound to the task"
    if name == "DataCommitmentPosted":
        side = "gateway" if a["kind"] == ChainComponent.GATEWAY else "runtime"
        return "commitment", (
            f"{org}: {side} side data commitment {_whole(a['commitment'])} "
            f"(posted by {index.actor(a['actor'])})"
        )
    if name == "CommitmentMatched":
        return "commitment", f"{org}: gateway and runtime commitments match"
    if name == "CommitmentMismatched":
        return "dispute", (
            f"{org}: commitments differ — gateway {_whole(a['gateway'])}, runtime "
            f"{_whole(a['runtime'])}: the task is disputed"
        )
    if name == "ModelCommitted":
        if a["kind"] == ChainComponent.PREDICTION:
            return "model", (f"prediction runtime took over model {_whole(a['commitment'])}")
        return "model", (
            f"model commitment {_whole(a['commitment'])}, released metrics digest "
            f"{_whole(a['metrics_digest'])}"
        )
    if name == "AuditRootPosted":
        return "audit", (
            f"prediction audit batch #{a['batch']}: {a['count']} predictions, root "
            f"{_whole(a['root'])}"
        )
    if name == "ComponentAborted":
        return "abort", f"{_kind(a['kind'])} runtime {a['component']} aborted: {a['reason']}"
    return "other", name


def timeline_item(event: ChainEvent, cache: EventCache) -> dict[str, Any]:
    category, summary = describe(event, cache)
    return {
        **_event_ref(event, cache),
        "log_index": event.log_index,
        "event": event.name,
        "category": category,
        "summary": summary,
        "args": event.args,
    }


# ------------------------------------------------------------------ pages


def consortium_page(consortium: Consortium, cache: EventCache) -> dict[str, Any]:
    index = cache.index
    key_since: dict[str, int] = {}
    for event in index.membership:
        if event.name in ("MemberAdded", "KeyAdded"):
            key_since[event.args["key"]] = event.block_number
    members = []
    for member in consortium.members():
        oid = "0x" + member.org_id.hex()
        joined = next(
            (
                e.block_number
                for e in index.membership
                if e.name == "MemberAdded" and e.args["org"] == oid
            ),
            None,
        )
        members.append(
            {
                "name": member.name,
                "org_id": oid,
                "joined_block": joined,
                "keys": [{"address": k, "since_block": key_since.get(k)} for k in member.keys],
            }
        )
    current = {m["org_id"] for m in members}
    former = [
        {"name": index.org(e.args["org"]), "org_id": e.args["org"], "removed_block": e.block_number}
        for e in index.membership
        if e.name == "MemberRemoved" and e.args["org"] not in current
    ]
    proposals = []
    for pid in range(1, int(consortium.call("proposal_count")) + 1):
        view = consortium.proposal(pid)
        events = index.by_proposal.get(pid, [])
        created = next((e for e in events if e.name == "ProposalCreated"), None)
        executed = next((e for e in events if e.name == "ProposalExecuted"), None)
        if view.kind is ProposalKind.ADD_MEMBER:
            change = f"add member {view.name} with key {view.key}"
        elif view.kind is ProposalKind.REMOVE_MEMBER:
            change = f"remove member {index.org('0x' + view.subject.hex())}"
        else:
            change = f"set simulated TEE allowed to {str(view.flag).lower()}"
        proposals.append(
            {
                "id": pid,
                "kind": view.kind.name.lower(),
                "change": change,
                "proposer": view.proposer,
                "approvals": view.approvals,
                "required": view.required,
                "executed": view.executed,
                "created_block": created.block_number if created else None,
                "executed_block": executed.block_number if executed else None,
                "approved_by": [
                    {"org": index.org(e.args["org"]), **_event_ref(e, cache)}
                    for e in events
                    if e.name == "ProposalApproved"
                ],
            }
        )
    return {
        "page": "consortium",
        "simulated_tee_allowed": consortium.simulated_tee_allowed(),
        "members": members,
        "former_members": former,
        "proposals": proposals,
        "tasks": len(index.tasks),
        "measurements": len(index.measurements),
    }


def _measurement_entry(
    consortium: Consortium, cache: EventCache, mid: str, states: dict[str, str]
) -> dict[str, Any]:
    index = cache.index
    events = index.by_measurement[mid]
    proposed = events[0]
    kind, tee = int(proposed.args["kind"]), int(proposed.args["tee"])
    digest = cache.digest(mid)
    view = consortium.measurement(ChainComponent(kind), ChainTee(tee), digest)
    approved = [e for e in events if e.name == "MeasurementApproved"]
    revoked = next((e for e in events if e.name == "MeasurementRevoked"), None)
    approvers = {e.args["org"] for e in approved}
    members = _current_members(cache)
    pinned_by = []
    for task in index.tasks:
        pins = cache.pins(task)
        if any(p.kind == kind and p.tee == tee and p.digest == digest for p in pins):
            if task not in states:
                states[task] = _state(int(consortium.call("tasks", bytes.fromhex(task[2:]))[0]))
            pinned_by.append({"task_id": task, "state": states[task]})
    return {
        "id": mid,
        "kind": _kind(kind),
        "tee": _tee(tee),
        "digest": "0x" + digest.hex(),
        "status": view.status.name.lower(),
        "usable": view.usable,
        "approvals": view.approvals,
        "required": view.required,
        "proposed": {"org": index.org(proposed.args["org"]), **_event_ref(proposed, cache)},
        "approved_by": [
            {
                "org": index.org(e.args["org"]),
                "relayed": index.key_orgs.get(e.actor) != e.args["org"],
                **_event_ref(e, cache),
            }
            for e in approved
        ],
        "not_approved_by": [index.org(o) for o in members if o not in approvers],
        "revoked": (
            {"org": index.org(revoked.args["org"]), **_event_ref(revoked, cache)}
            if revoked is not None
            else None
        ),
        "pinned_by": pinned_by,
    }


def _current_members(cache: EventCache) -> list[str]:
    members: list[str] = []
    for event in cache.index.membership:
        if event.name == "MemberAdded":
            members.append(event.args["org"])
        elif event.name == "MemberRemoved" and event.args["org"] in members:
            members.remove(event.args["org"])
    return members


def measurements_page(consortium: Consortium, cache: EventCache) -> dict[str, Any]:
    states: dict[str, str] = {}
    return {
        "page": "measurements",
        "simulated_tee_allowed": consortium.simulated_tee_allowed(),
        "measurements": [
            _measurement_entry(consortium, cache, mid, states) for mid in cache.index.measurements
        ],
    }


def measurement_page(consortium: Consortium, cache: EventCache, mid: str) -> dict[str, Any]:
    if mid not in cache.index.by_measurement:
        raise ExplorerError(
            f"no measurement {mid} was ever proposed to this consortium (ids are "
            "keccak256(kind, tee, digest); the measurements page lists them all)",
            id="explorer.measurement.unknown",
            status=404,
        )
    return {
        "page": "measurement",
        "measurement": _measurement_entry(consortium, cache, mid, {}),
    }


def tasks_page(consortium: Consortium, cache: EventCache) -> dict[str, Any]:
    now = latest_time(consortium)
    tasks = []
    for task in cache.index.tasks:
        events = cache.index.by_task[task]
        proposed = events[0]
        state = _state(int(consortium.call("tasks", bytes.fromhex(task[2:]))[0]))
        deadline = int(proposed.args["deadline"])
        tasks.append(
            {
                "task_id": task,
                "state": state,
                "proposer": cache.index.org(proposed.args["org"]),
                "participants": cache.participants(task),
                "deadline": deadline,
                "deadline_utc": _iso(deadline),
                "deadline_passed": now > deadline,
                "proposed_block": proposed.block_number,
                "events": len(events),
                "last_block": events[-1].block_number,
            }
        )
    return {"page": "tasks", "now": now, "now_utc": _iso(now), "tasks": tasks}


def _unknown_task(task: str) -> ExplorerError:
    return ExplorerError(
        f"no task {task} on this consortium's chain (a task id is 0x + the SHA-256 of the "
        "task spec's canonical JSON; the tasks page lists every task)",
        id="explorer.task.unknown",
        status=404,
    )


def task_page(consortium: Consortium, cache: EventCache, task: str) -> dict[str, Any]:
    try:
        view = consortium.task(task)
    except LedgerError as exc:
        if exc.id == "ledger.task.unknown":
            raise _unknown_task(task) from exc
        raise
    events = cache.index.by_task.get(task, [])
    now = latest_time(consortium)
    by_name: dict[str, list[ChainEvent]] = {}
    for e in events:
        by_name.setdefault(e.name, []).append(e)
    approvals = [_approval(e, cache) for e in by_name.get("TaskApproved", [])]
    return {
        "page": "task",
        "task_id": task,
        "state": _state(view.state),
        "disputed": view.state is TaskState.DISPUTED,
        "proposer": view.proposer,
        "deadline": view.deadline,
        "deadline_utc": _iso(view.deadline),
        "deadline_passed": now > view.deadline,
        "participants": [
            {
                "name": name,
                "roles": _role_names(view.roles[name]),
                "approved": name in view.approved_by,
            }
            for name in view.participants
        ],
        "approvals": {"count": view.approvals, "required": view.required, "events": approvals},
        "measurements": [_pin(p.kind, p.tee, p.digest) for p in view.measurements],
        "transitions": [_transition(e, cache) for e in by_name.get("TaskStateChanged", [])],
        "attestations": _attestations(by_name, cache),
        "acknowledgements": f"{view.acknowledgements}/{view.providers}",
        "analysis": view.analysis,
        "prediction": view.prediction,
        "commitments": _commitments(view, by_name),
        "matched_commitments": f"{view.matched_commitments}/{view.providers}",
        "model_commitment": _hex(view.model_commitment),
        "metrics_digest": _hex(view.metrics_digest),
        "models": [_model(e, view, cache) for e in by_name.get("ModelCommitted", [])],
        "audit": _audit_batches(view, by_name.get("AuditRootPosted", []), cache),
        "aborts": [
            {"kind": _kind(e.args["kind"]), "reason": e.args["reason"], **_event_ref(e, cache)}
            for e in by_name.get("ComponentAborted", [])
        ],
        "timeline": [timeline_item(e, cache) for e in events],
    }


def _transition(e: ChainEvent, cache: EventCache) -> dict[str, Any]:
    return {
        "from": _state(e.args["from_state"]),
        "to": _state(e.args["to_state"]),
        "org": cache.index.org(e.args["org"]),
        "time_utc": _iso(cache.block_time(e.block_number)),
        **_event_ref(e, cache),
    }


def _approval(e: ChainEvent, cache: EventCache) -> dict[str, Any]:
    return {
        "org": cache.index.org(e.args["org"]),
        "count": f"{e.args['approvals']}/{e.args['required']}",
        "relayed": bool(e.args["relayed"]),
        **_event_ref(e, cache),
    }


def _pin(kind: int, tee: int, digest: bytes) -> dict[str, Any]:
    return {
        "kind": _kind(kind),
        "tee": _tee(tee),
        "digest": "0x" + digest.hex(),
        "measurement_id": "0x" + measurement_id(kind, tee, digest).hex(),
    }


def _attestations(by_name: dict[str, list[ChainEvent]], cache: EventCache) -> list[dict[str, Any]]:
    """Each posted attestation, whether it got its component bound, and who acknowledged
    it (the parties for the analysis runtime, the analysis runtime for the prediction's)."""
    acks = by_name.get("AttestationAcknowledged", [])
    bound = {(e.args["component"], e.args["evidence"]) for e in by_name.get("ComponentBound", [])}
    attestations = []
    for e in by_name.get("AttestationPosted", []):
        a = e.args
        mine = [
            x for x in acks if x.args["evidence"] == a["evidence"] and x.args["kind"] == a["kind"]
        ]
        attestations.append(
            {
                "kind": _kind(a["kind"]),
                "component": a["component"],
                "tee": _tee(a["tee"]),
                "measurement": a["measurement"],
                "measurement_id": "0x"
                + measurement_id(int(a["kind"]), int(a["tee"]), a["measurement"]).hex(),
                "evidence": a["evidence"],
                "tls_key": a["tls_key"],
                "bound": (a["component"], a["evidence"]) in bound,
                "acknowledgements": [
                    {
                        "by": (
                            "analysis runtime"
                            if x.args["kind"] == ChainComponent.PREDICTION
                            else cache.index.org(x.args["org"])
                        ),
                        "count": f"{x.args['acks']}/{x.args['required']}",
                        **_event_ref(x, cache),
                    }
                    for x in mine
                ],
                **_event_ref(e, cache),
            }
        )
    return attestations


def _commitments(view: TaskView, by_name: dict[str, list[ChainEvent]]) -> list[dict[str, Any]]:
    """Per data provider: the gateway's and the analysis runtime's data commitments and the
    chain's verdict on them."""
    posted = by_name.get("DataCommitmentPosted", [])

    def first(
        events: list[ChainEvent], oid: str, kind: ChainComponent | None = None
    ) -> ChainEvent | None:
        return next(
            (
                e
                for e in events
                if e.args["org"] == oid and (kind is None or e.args["kind"] == kind)
            ),
            None,
        )

    commitments = []
    for party, role in view.roles.items():
        if not role & ChainRole.DATA_PROVIDER:
            continue
        oid = "0x" + org_id(party).hex()
        gateway = first(posted, oid, ChainComponent.GATEWAY)
        runtime = first(posted, oid, ChainComponent.ANALYSIS)
        matched = first(by_name.get("CommitmentMatched", []), oid)
        differs = first(by_name.get("CommitmentMismatched", []), oid)
        verdict = "matched" if matched else "disputed" if differs else "pending"
        decided = matched or differs
        commitments.append(
            {
                "party": party,
                "gateway": gateway.args["commitment"] if gateway else None,
                "gateway_block": gateway.block_number if gateway else None,
                "runtime": runtime.args["commitment"] if runtime else None,
                "runtime_block": runtime.block_number if runtime else None,
                "verdict": verdict,
                "decided_block": decided.block_number if decided else None,
            }
        )
    return commitments


def _model(e: ChainEvent, view: TaskView, cache: EventCache) -> dict[str, Any]:
    return {
        "kind": _kind(e.args["kind"]),
        "commitment": e.args["commitment"],
        "metrics_digest": (
            e.args["metrics_digest"] if e.args["kind"] == ChainComponent.ANALYSIS else None
        ),
        "matches": e.args["commitment"] == _hex(view.model_commitment),
        **_event_ref(e, cache),
    }


def _audit_batches(view: TaskView, batches: list[ChainEvent], cache: EventCache) -> dict[str, Any]:
    return {
        "batches": view.audit_batches,
        "predictions": view.audited_predictions,
        "shown": [
            {
                "batch": e.args["batch"],
                "count": e.args["count"],
                "root": e.args["root"],
                **_event_ref(e, cache),
            }
            for e in batches[-MAX_BATCHES_SHOWN:]
        ],
    }


def verify_page(consortium: Consortium, cache: EventCache, task: str) -> dict[str, Any]:
    """Run ``chronoseal audit``'s checks on the task from the cached history."""
    from chronoseal.audit import audit_task

    if consortium.task_state(task) is TaskState.NONE:
        raise _unknown_task(task)
    audit = audit_task(consortium, bytes.fromhex(task[2:]), events=cache.events)
    doc = audit.to_json()
    return {
        "page": "verify",
        "task_id": task,
        "state": audit.state,
        "verified": audit.verified,
        "checks": [c.to_json() for c in audit.checks],
        "failures": [c.id for c in audit.failures],
        "audit": doc,
    }


def address_page(consortium: Consortium, cache: EventCache, address: str) -> dict[str, Any]:
    index = cache.index
    org = consortium.org_of_key(address)
    history = [
        {
            "event": e.name,
            "org": index.org(e.args["org"]),
            **_event_ref(e, cache),
        }
        for e in index.membership
        if e.args.get("key") == address
    ]
    components = []
    for task in index.tasks:
        for e in index.by_task[task]:
            if e.name == "AttestationPosted" and e.args["component"] == address:
                bound = any(
                    x.name == "ComponentBound" and x.args["component"] == address
                    for x in index.by_task[task]
                )
                components.append(
                    {
                        "task_id": task,
                        "kind": _kind(e.args["kind"]),
                        "bound": bound,
                        "block": e.block_number,
                    }
                )
    sent = index.by_actor.get(address, [])
    if org is None and not history and not components and not sent:
        raise ExplorerError(
            f"{address} is neither a member's key nor a task's component, and sent no "
            "transaction to this consortium",
            id="explorer.address.unknown",
            status=404,
        )
    return {
        "page": "address",
        "address": address,
        "member": org,
        "label": index.actor(address),
        "key_history": history,
        "components": components,
        "transactions": len({e.tx_hash for e in sent}),
        "events": [
            {
                "event": e.name,
                "task_id": e.args.get("task_id"),
                **_event_ref(e, cache),
            }
            for e in sent[-MAX_ACTOR_EVENTS:]
        ],
    }
