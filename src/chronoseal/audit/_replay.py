"""Re-verify one task by replaying the consortium's whole event history against the rules
the contract is meant to enforce.

The replay trusts nothing the contract's storage says: membership, keys, measurement
approvals and revocations are rebuilt from events in chain order, relayed EIP-712
signatures are recovered again from the transactions' input, and the stored record is
compared with the replay only at the end (``audit.record``). A history served by a lying
node, a contract that enforced less than it should, or a component that acted out of turn
all show up as a failed check with its id.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hexbytes import HexBytes

from chronoseal.errors import ChronosealError, LedgerError
from chronoseal.ledger import (
    ChainComponent,
    ChainEvent,
    ChainRole,
    ChainTee,
    Consortium,
    TaskState,
    TaskView,
    map_chain_errors,
    measurement_id,
    read_events,
)
from chronoseal.prediction import Receipt, verify_receipt

from ._model import ChainAuditError, Check, TaskAudit, TimelineItem

ZERO32 = "0x" + "00" * 32
MAX_FOUNDERS = 32  # the constructor's MemberAdded events precede its SimulatedTeeAllowedChanged

# The contract's EDGES, restated so the audit does not take the contract's word for them.
LEGAL_EDGES = frozenset(
    {
        (TaskState.NONE, TaskState.PROPOSED),
        (TaskState.PROPOSED, TaskState.APPROVED),
        (TaskState.PROPOSED, TaskState.ABORTED),
        (TaskState.APPROVED, TaskState.RUNNING),
        (TaskState.APPROVED, TaskState.ABORTED),
        (TaskState.RUNNING, TaskState.TRAINED),
        (TaskState.RUNNING, TaskState.ABORTED),
        (TaskState.RUNNING, TaskState.DISPUTED),
        (TaskState.TRAINED, TaskState.SERVING),
        (TaskState.TRAINED, TaskState.ABORTED),
        (TaskState.TRAINED, TaskState.DISPUTED),
        (TaskState.SERVING, TaskState.RETIRED),
        (TaskState.SERVING, TaskState.ABORTED),
        (TaskState.DISPUTED, TaskState.ABORTED),
    }
)
_UNFINISHED = frozenset(
    {TaskState.PROPOSED, TaskState.APPROVED, TaskState.RUNNING, TaskState.TRAINED}
)

CHECKS: tuple[tuple[str, str], ...] = (
    ("audit.history", "The event history is complete, in chain order and on the canonical chain"),
    ("audit.proposal", "A member's key proposed the task, naming members and usable measurements"),
    ("audit.transitions", "Every state change is a legal edge, in order, with its cause"),
    (
        "audit.approvals",
        "Every named party approved once, while a member, by its own key, before the deadline",
    ),
    ("audit.signatures", "Every relayed EIP-712 approval recovers to a key of the org it names"),
    ("audit.measurements", "Every pinned measurement was approved by every member before use"),
    ("audit.revocations", "No pinned measurement was used at or after its revocation"),
    (
        "audit.attestations",
        "Every data provider acknowledged the bound analysis runtime before Running",
    ),
    ("audit.commitments", "Every provider's gateway and runtime data commitments match"),
    ("audit.model", "The bound analysis runtime committed the model after every match"),
    (
        "audit.prediction",
        "The prediction runtime was attested, acknowledged and committed the same model",
    ),
    (
        "audit.audit_roots",
        "Audit batches are numbered in order, by the bound runtime, totals match",
    ),
    ("audit.receipts", "Every prediction receipt given checks out against the chain alone"),
    ("audit.deadline", "The task is not left hanging past its deadline"),
    ("audit.record", "The contract's stored record agrees with the replayed history"),
)


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class _Measurement:
    kind: int
    tee: int
    required: int
    proposer: str
    approvers: dict[str, tuple[int, ChainEvent, frozenset[str], bool]] = field(
        default_factory=dict
    )  # org -> (position, event, the org's keys then, whether the org was a member then)
    approved_at: int | None = None
    revoked_at: int | None = None
    revoked_by: str = ""
    revoked_block: int = 0


class _World:
    """Membership, keys, the simulated-TEE flag and the measurement registry, as of now."""

    def __init__(self) -> None:
        self.members: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.key_org: dict[str, str] = {}
        self.simulated: bool | None = None
        self.measurements: dict[str, _Measurement] = {}
        self.removed_at: dict[str, int] = {}

    def keys_of(self, org: str) -> frozenset[str]:
        return frozenset(k for k, o in self.key_org.items() if o == org)

    def is_key_of(self, address: str, org: str) -> bool:
        return self.key_org.get(address.lower()) == org

    def name(self, org: str) -> str:
        return self.names.get(org, org)

    def actor(self, address: str) -> str:
        org = self.key_org.get(address.lower())
        return self.names[org] if org in self.names else address

    def apply(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        if ev.name == "MemberAdded":
            org = str(a["org"])
            self.members[org] = self.names[org] = str(a["name"])
            self.key_org[str(a["key"]).lower()] = org
            self.removed_at.pop(org, None)
        elif ev.name == "MemberRemoved":
            org = str(a["org"])
            self.members.pop(org, None)
            self.removed_at[org] = pos
            self.key_org = {k: o for k, o in self.key_org.items() if o != org}
        elif ev.name == "KeyAdded":
            self.key_org[str(a["key"]).lower()] = str(a["org"])
        elif ev.name == "KeyRemoved":
            self.key_org.pop(str(a["key"]).lower(), None)
        elif ev.name == "SimulatedTeeAllowedChanged":
            self.simulated = bool(a["allowed"])
        elif ev.name == "MeasurementProposed":
            self.measurements[str(a["measurement"])] = _Measurement(
                kind=int(a["kind"]),
                tee=int(a["tee"]),
                required=int(a["required"]),
                proposer=str(a["org"]),
            )
        elif ev.name == "MeasurementApproved":
            m = self.measurements.get(str(a["measurement"]))
            if m is not None:
                org = str(a["org"])
                m.approvers[org] = (pos, ev, self.keys_of(org), org in self.members)
                if m.approved_at is None and len(m.approvers) >= m.required:
                    m.approved_at = pos
        elif ev.name == "MeasurementRevoked":
            m = self.measurements.get(str(a["measurement"]))
            if m is not None and m.revoked_at is None:
                m.revoked_at, m.revoked_by, m.revoked_block = pos, str(a["org"]), ev.block_number


@dataclass(frozen=True)
class _Pin:
    kind: int
    tee: int
    digest: str
    mid: str

    def label(self) -> str:
        kind = ChainComponent(self.kind).component.value
        try:
            tee = ChainTee(self.tee).name.lower()
        except ValueError:
            tee = str(self.tee)
        return f"{kind}/{tee}/{self.digest}"


@dataclass
class _Record:
    kind: int
    tee: int
    measurement: str
    component: str
    evidence: str
    acks: set[str] = field(default_factory=set)


class _Chain:
    """The reads beyond the logs: blocks (hash, time) and transaction inputs, cached."""

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium
        self._blocks: dict[int, tuple[str, int]] = {}
        self._calls: dict[str, tuple[str, dict[str, Any]]] = {}

    def block(self, number: int) -> tuple[str, int]:
        if number not in self._blocks:
            with map_chain_errors("eth_getBlockByNumber"):
                block = self.consortium.chain.w3.eth.get_block(number)
            self._blocks[number] = ("0x" + bytes(block["hash"]).hex(), int(block["timestamp"]))
        return self._blocks[number]

    def creates_contract(self, tx_hash: str) -> bool:
        """Whether ``tx_hash`` is the transaction that created the consortium contract."""
        with map_chain_errors("eth_getTransactionReceipt", tx_hash):
            receipt = self.consortium.chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        created = receipt.get("contractAddress")
        return created is not None and str(created).lower() == self.consortium.address.lower()

    def call(self, tx_hash: str) -> tuple[str, dict[str, Any]]:
        if tx_hash not in self._calls:
            self._calls[tx_hash] = self.consortium.transaction_call(tx_hash)
        return self._calls[tx_hash]


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)


class _Replay:
    """One pass over the history: the world evolves, and the task's events are judged
    against the world as it stood at each of them."""

    def __init__(self, consortium: Consortium, task_hex: str, chain: _Chain) -> None:
        self.consortium = consortium
        self.task_hex = task_hex
        self.chain = chain
        self.world = _World()
        self.problems: dict[str, list[str]] = {cid: [] for cid, _ in CHECKS}
        self.notes: dict[str, list[str]] = {cid: [] for cid, _ in CHECKS}
        self.state = TaskState.NONE
        self.visited: set[TaskState] = set()
        self.path = [TaskState.NONE]
        self.proposed = False
        self.proposer = ""
        self.parties: list[str] = []
        self.roles: dict[str, int] = {}
        self.pins: list[_Pin] = []
        self.deadline = 0
        self.approved: dict[str, bool] = {}  # org -> relayed
        self.records: dict[tuple[str, str], _Record] = {}
        self.acked: dict[str, tuple[str, str]] = {}
        self.analysis: _Record | None = None
        self.prediction: _Record | None = None
        self.gateway_commit: dict[str, str] = {}
        self.runtime_commit: dict[str, str] = {}
        self.matched: set[str] = set()
        self.mismatched: set[str] = set()
        self.model: str | None = None
        self.metrics: str | None = None
        self.prediction_model: str | None = None
        self.batches = 0
        self.audited = 0
        self.relayed_checked = 0
        self.timeline: list[TimelineItem] = []
        self.prev: ChainEvent | None = None
        self.task_events = 0
        self.events_seen = 0

    # ------------------------------------------------------------------ helpers

    def fail(self, check: str, message: str) -> None:
        self.problems[check].append(message)

    def note(self, check: str, message: str) -> None:
        self.notes[check].append(message)

    def time(self, ev: ChainEvent) -> int:
        return self.chain.block(ev.block_number)[1]

    def providers(self) -> list[str]:
        return [p for p in self.parties if self.roles.get(p, 0) & ChainRole.DATA_PROVIDER]

    def pinned(self, kind: int, tee: int, digest: str) -> _Pin | None:
        for pin in self.pins:
            if (pin.kind, pin.tee, pin.digest.lower()) == (kind, tee, digest.lower()):
                return pin
        return None

    def where(self, ev: ChainEvent) -> str:
        return f"block {ev.block_number} ({ev.name}, tx {ev.tx_hash})"

    def use(self, pin: _Pin | None, pos: int, ev: ChainEvent, what: str) -> None:
        """A component acted under ``pin`` at ``pos``: the measurement must be usable then."""
        if pin is None:
            return
        m = self.world.measurements.get(pin.mid)
        if m is None:
            self.fail(
                "audit.measurements",
                f"{what} at {self.where(ev)} runs {pin.label()}, which the registry never held",
            )
            return
        if m.revoked_at is not None and m.revoked_at < pos:
            self.fail(
                "audit.revocations",
                f"{what} at {self.where(ev)} runs {pin.label()}, revoked by "
                f"{self.world.name(m.revoked_by)} at block {m.revoked_block}",
            )
        if m.approved_at is None or m.approved_at > pos:
            self.fail(
                "audit.measurements",
                f"{what} at {self.where(ev)} runs {pin.label()} before every member approved "
                f"it ({len(m.approvers)} of {m.required})",
            )
        if pin.tee == ChainTee.SIMULATED and not self.world.simulated:
            self.fail(
                "audit.measurements",
                f"{what} at {self.where(ev)} runs the simulated TEE while the consortium "
                "does not allow it",
            )

    def use_gateway(self, pos: int, ev: ChainEvent, what: str) -> None:
        """The chain does not say which pinned gateway measurement a gateway ran: at least
        one must be usable, and each revoked one is noted."""
        pins = [p for p in self.pins if p.kind == ChainComponent.GATEWAY]
        usable = []
        for pin in pins:
            m = self.world.measurements.get(pin.mid)
            if m is None or m.approved_at is None or m.approved_at > pos:
                continue
            if m.revoked_at is not None and m.revoked_at < pos:
                self.note(
                    "audit.revocations",
                    f"{pin.label()} was revoked before {what} at "
                    f"block {ev.block_number}; the task pins other gateway measurements",
                )
                continue
            usable.append(pin)
        if pins and not usable:
            self.fail(
                "audit.revocations",
                f"{what} at {self.where(ev)}: every pinned gateway measurement was revoked "
                "or unapproved by then",
            )

    def by_org_key(self, check: str, ev: ChainEvent, org: str, what: str) -> None:
        if org not in self.world.members:
            self.fail(
                check, f"{what} at {self.where(ev)} is by {self.world.name(org)}, not a member then"
            )
        elif not self.world.is_key_of(ev.actor, org):
            self.fail(
                check,
                f"{what} at {self.where(ev)} was sent by {ev.actor}, not a key of "
                f"{self.world.name(org)} then",
            )

    def expect_state(self, check: str, ev: ChainEvent, *states: TaskState) -> bool:
        if self.state in states:
            return True
        allowed = " or ".join(s.name.title() for s in states)
        self.fail(
            check,
            f"{self.where(ev)} happened while the task was {self.state.name.title()}, "
            f"not {allowed}",
        )
        return False

    def same_tx(self, ev: ChainEvent, name: str) -> ChainEvent | None:
        prev = self.prev
        if prev is not None and prev.tx_hash == ev.tx_hash and prev.name == name:
            return prev
        return None

    def actor_name(self, address: str) -> str:
        """An org by name, a bound component by its role, anyone else by address."""
        for record, role in (
            (self.analysis, "analysis runtime"),
            (self.prediction, "prediction runtime"),
        ):
            if record is not None and record.component.lower() == address.lower():
                return role
        return self.world.actor(address)

    def item(self, ev: ChainEvent, summary: str, actor: str | None = None) -> None:
        self.timeline.append(
            TimelineItem(
                block=ev.block_number,
                time=self.time(ev),
                tx_hash=ev.tx_hash,
                log_index=ev.log_index,
                event=ev.name,
                actor=actor if actor is not None else self.actor_name(ev.actor),
                summary=summary,
            )
        )

    # ------------------------------------------------------------------ the pass

    def run(self, events: Sequence[ChainEvent]) -> None:
        self.events_seen = len(events)
        self.check_history(events)
        for pos, ev in enumerate(events):
            if ev.args.get("task_id") == self.task_hex:
                self.task_events += 1
                handler = getattr(self, "on_" + ev.name, None)
                if handler is None:
                    self.fail("audit.history", f"unexpected task event {self.where(ev)}")
                else:
                    handler(pos, ev)
                self.prev = ev
            else:
                self.world_event(pos, ev)
                self.world.apply(pos, ev)

    def check_history(self, events: Sequence[ChainEvent]) -> None:
        keys = [(e.block_number, e.log_index) for e in events]
        for i in range(1, len(keys)):
            if keys[i] <= keys[i - 1]:
                self.fail(
                    "audit.history",
                    f"event {events[i].name} at block {keys[i][0]}#{keys[i][1]} comes after "
                    f"block {keys[i - 1][0]}#{keys[i - 1][1]}: the history is out of order",
                )
                break
        if not self.starts_at_deployment(events):
            self.fail(
                "audit.history",
                "the history does not start at the contract's deployment (its first events "
                "are not the constructor's founding members); read it from the deployment block",
            )
        seen: dict[int, str] = {}
        for e in events:
            if e.args.get("task_id") != self.task_hex:
                continue
            if seen.setdefault(e.block_number, e.block_hash) != e.block_hash:
                self.fail("audit.history", f"block {e.block_number} has two hashes in the history")
        for number, claimed in seen.items():
            actual, _ = self.chain.block(number)
            if actual.lower() != claimed.lower():
                self.fail(
                    "audit.history",
                    f"the history puts task events in block {number} {claimed}, but "
                    f"the chain's block {number} is {actual}",
                )

    def starts_at_deployment(self, events: Sequence[ChainEvent]) -> bool:
        """The constructor logs each founder, then the simulated-TEE flag, in the
        transaction that created the contract: the history must open with exactly that."""
        head = events[: MAX_FOUNDERS + 1]
        flag = next((i for i, e in enumerate(head) if e.name == "SimulatedTeeAllowedChanged"), 0)
        if flag == 0:
            return False
        tx = head[flag].tx_hash
        if any(e.name != "MemberAdded" or e.tx_hash != tx for e in head[:flag]):
            return False
        return self.chain.creates_contract(tx)

    def world_event(self, pos: int, ev: ChainEvent) -> None:
        """Consortium events that matter to the task: revocations and removals."""
        if not self.proposed:
            return
        a = ev.args
        if ev.name == "MeasurementRevoked" and any(p.mid == a["measurement"] for p in self.pins):
            pin = next(p for p in self.pins if p.mid == a["measurement"])
            self.item(ev, f"{self.world.name(str(a['org']))} revoked pinned {pin.label()}")
        elif ev.name == "MemberRemoved" and str(a["org"]) in self.parties:
            self.item(
                ev, f"participant {self.world.name(str(a['org']))} removed from the consortium"
            )

    # ------------------------------------------------------------------ task events

    def on_TaskProposed(self, pos: int, ev: ChainEvent) -> None:
        org = str(ev.args["org"])
        if self.proposed:
            self.fail("audit.proposal", f"a second proposal at {self.where(ev)}")
            return
        self.proposed, self.proposer = True, org
        self.by_org_key("audit.proposal", ev, org, "the proposal")
        try:
            fn, args = self.chain.call(ev.tx_hash)
        except LedgerError as exc:
            self.fail("audit.proposal", f"the proposal's transaction cannot be read: {exc.message}")
            return
        if fn != "propose_task" or _hex(args.get("task_id", b"")) != self.task_hex:
            self.fail("audit.proposal", f"the proposal event's transaction called {fn}")
            return
        self.parties = [_hex(p) for p in args["parties"]]
        self.roles = dict(zip(self.parties, (int(r) for r in args["roles"]), strict=False))
        self.deadline = int(args["deadline"])
        for raw in args["measurements"]:
            kind, tee, digest = (
                (raw["kind"], raw["tee"], raw["digest"]) if isinstance(raw, dict) else raw
            )
            self.pins.append(
                _Pin(
                    int(kind),
                    int(tee),
                    _hex(digest),
                    "0x" + measurement_id(kind, tee, digest).hex(),
                )
            )
        for party in self.parties:
            if party not in self.world.members:
                self.fail(
                    "audit.proposal",
                    f"participant {self.world.name(party)} was not a "
                    "member when the task was proposed",
                )
        if org not in self.roles:
            self.fail("audit.proposal", f"the proposer {self.world.name(org)} is not a participant")
        if int(ev.args["required"]) != len(self.parties):
            self.fail(
                "audit.proposal",
                "the proposal requires "
                f"{ev.args['required']} approvals for {len(self.parties)} participants",
            )
        if int(ev.args["providers"]) != len(self.providers()):
            self.fail(
                "audit.proposal",
                f"the proposal counts {ev.args['providers']} providers, "
                f"its roles name {len(self.providers())}",
            )
        if self.deadline <= self.time(ev):
            self.fail("audit.proposal", "the deadline had passed when the task was proposed")
        for pin in self.pins:
            self.use(pin, pos, ev, f"the proposal's pin {pin.label()}")
        self.item(
            ev,
            f"{self.world.name(org)} proposed the task: {len(self.parties)} participants "
            f"({len(self.providers())} providing data), {len(self.pins)} pinned measurements, "
            f"deadline {_when(self.deadline)}",
        )

    def on_TaskStateChanged(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        try:
            frm, to = TaskState(int(a["from_state"])), TaskState(int(a["to_state"]))
        except ValueError:
            self.fail("audit.transitions", f"an unknown state at {self.where(ev)}")
            return
        if frm != self.state:
            self.fail(
                "audit.transitions",
                f"{frm.name.title()} → {to.name.title()} at {self.where(ev)}, but the task was "
                f"{self.state.name.title()}",
            )
        if (frm, to) not in LEGAL_EDGES:
            self.fail(
                "audit.transitions",
                f"{frm.name.title()} → {to.name.title()} at {self.where(ev)} is not a legal edge",
            )
        cause = self.cause(ev, to)
        if cause:
            self.fail("audit.transitions", f"→ {to.name.title()} at {self.where(ev)}: {cause}")
        self.state = to
        self.visited.add(to)
        self.path.append(to)
        self.item(ev, f"{frm.name.title()} → {to.name.title()}")

    def cause(self, ev: ChainEvent, to: TaskState) -> str | None:
        """Why the transition is not justified by the event just before it, or None."""
        org = str(ev.args.get("org", ZERO32))
        if to is TaskState.PROPOSED:
            return None if self.same_tx(ev, "TaskProposed") else "no proposal in the same call"
        if to is TaskState.APPROVED:
            if not self.same_tx(ev, "TaskApproved"):
                return "no approval in the same call"
            missing = [self.world.name(p) for p in self.parties if p not in self.approved]
            return f"{', '.join(missing)} had not approved" if missing else None
        if to is TaskState.RUNNING:
            return None if self.same_tx(ev, "ComponentBound") else "no component bound"
        if to is TaskState.TRAINED:
            return None if self.same_tx(ev, "ModelCommitted") else "no model commitment"
        if to is TaskState.SERVING:
            prev = self.same_tx(ev, "ModelCommitted")
            if prev is None or prev.args.get("commitment") != self.model:
                return "no matching prediction model commitment in the same call"
            return None
        if to is TaskState.DISPUTED:
            if self.same_tx(ev, "CommitmentMismatched") or self.same_tx(ev, "ModelCommitted"):
                return None
            return "no mismatched commitment in the same call"
        if to is TaskState.ABORTED:
            if self.same_tx(ev, "ComponentAborted"):
                return None
            if self.time(ev) > self.deadline:
                return None
            if org in self.roles and self.world.is_key_of(ev.actor, org):
                return None
            return f"aborted by {ev.actor}, not a participant's key, before the deadline"
        if to is TaskState.RETIRED:
            if org in self.roles and self.world.is_key_of(ev.actor, org):
                return None
            return f"retired by {ev.actor}, not a participant's key"
        return "no state should be entered this way"

    def on_TaskApproved(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        org, relayed = str(a["org"]), bool(a["relayed"])
        name = self.world.name(org)
        self.expect_state("audit.approvals", ev, TaskState.PROPOSED)
        if org not in self.roles:
            self.fail("audit.approvals", f"{name} approved at {self.where(ev)} but is not named")
        if org not in self.world.members:
            self.fail("audit.approvals", f"{name} approved at {self.where(ev)} while not a member")
        if org in self.approved:
            self.fail("audit.approvals", f"{name} approved twice (again at {self.where(ev)})")
        if self.time(ev) > self.deadline:
            self.fail("audit.approvals", f"{name} approved after the deadline at {self.where(ev)}")
        self.approved[org] = relayed
        if int(a["approvals"]) != len(self.approved):
            self.fail(
                "audit.approvals",
                f"the approval count at {self.where(ev)} says "
                f"{a['approvals']}, the history {len(self.approved)}",
            )
        if relayed:
            self.check_task_signature(ev, org)
            how = f"relayed by {self.world.actor(ev.actor)}"
        else:
            self.by_org_key("audit.approvals", ev, org, f"{name}'s approval")
            how = "own key"
        for pin in self.pins:
            m = self.world.measurements.get(pin.mid)
            if m is not None and m.revoked_at is not None and m.revoked_at < pos:
                self.fail(
                    "audit.revocations",
                    f"{name} approved at {self.where(ev)} a task pinning revoked {pin.label()}",
                )
        self.item(
            ev, f"{name} approved ({how}; {len(self.approved)}/{len(self.parties)})", actor=name
        )

    def check_task_signature(self, ev: ChainEvent, org: str) -> None:
        self.relayed_checked += 1
        name = self.world.name(org)
        try:
            fn, args = self.chain.call(ev.tx_hash)
        except LedgerError as exc:
            self.fail("audit.signatures", f"{name}'s relayed approval: {exc.message}")
            return
        if fn != "approve_task_signed" or _hex(args["org"]) != org:
            self.fail(
                "audit.signatures",
                f"{name}'s relayed approval at {self.where(ev)} came from a {fn} call",
            )
            return
        signer = self.consortium.task_approval_signer(
            args["task_id"], args["org"], int(args["v"]), bytes(args["r"]), bytes(args["s"])
        )
        if signer is None or not self.world.is_key_of(signer, org):
            self.fail(
                "audit.signatures",
                f"{name}'s relayed approval at {self.where(ev)} was signed by "
                f"{signer or 'no valid key'}, not a key of {name} then",
            )

    def on_AttestationPosted(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        kind = int(a["kind"])
        check = "audit.prediction" if kind == ChainComponent.PREDICTION else "audit.attestations"
        want = {
            ChainComponent.PREDICTION: TaskState.TRAINED,
            ChainComponent.ANALYSIS_WORKER: TaskState.RUNNING,  # posted by the bound runtime
        }.get(ChainComponent(kind), TaskState.APPROVED)
        self.expect_state(check, ev, want)
        component, evidence = str(a["component"]), str(a["evidence"])
        if component.lower() != ev.actor.lower():
            self.fail(check, f"an attestation for {component} sent by {ev.actor}")
        pin = self.pinned(kind, int(a["tee"]), str(a["measurement"]))
        if pin is None:
            self.fail(check, f"the attestation at {self.where(ev)} is for an unpinned measurement")
        self.use(pin, pos, ev, f"the {ChainComponent(kind).component.value} attestation")
        key = (evidence.lower(), component.lower())
        if key in self.records:
            self.fail(check, f"the same attestation record posted twice at {self.where(ev)}")
        self.records[key] = _Record(kind, int(a["tee"]), str(a["measurement"]), component, evidence)
        what = ChainComponent(kind).component.value
        if kind == ChainComponent.ANALYSIS_WORKER:
            self.item(
                ev,
                f"analysis runtime {component} posted the attestation of a Dask worker it "
                f"admitted ({pin.label() if pin else 'unpinned'}, evidence {evidence})",
                actor="analysis runtime",
            )
            return
        self.item(
            ev,
            f"{what} runtime {component} posted its attestation "
            f"({pin.label() if pin else 'unpinned'}, evidence {evidence})",
            actor=f"{what} runtime",
        )

    def on_AttestationAcknowledged(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        kind = int(a["kind"])
        try:
            fn, args = self.chain.call(ev.tx_hash)
        except LedgerError as exc:
            self.fail("audit.attestations", f"acknowledgement at {self.where(ev)}: {exc.message}")
            return
        key = (_hex(args.get("evidence", b"")).lower(), str(args.get("component", "")).lower())
        record = self.records.get(key)
        if kind == ChainComponent.PREDICTION:
            self.expect_state("audit.prediction", ev, TaskState.TRAINED)
            if fn != "acknowledge_prediction" or record is None or record.kind != kind:
                self.fail(
                    "audit.prediction",
                    f"{self.where(ev)} acknowledges no prediction attestation the history holds",
                )
            if self.analysis is None or ev.actor.lower() != self.analysis.component.lower():
                self.fail(
                    "audit.prediction",
                    f"{self.where(ev)} was not sent by the bound analysis runtime",
                )
            elif record is not None:
                self.use(self.pin_of(self.analysis), pos, ev, "the analysis runtime's hand-over")
            self.item(
                ev,
                f"the analysis runtime acknowledged the prediction runtime {key[1]}",
                actor="analysis runtime",
            )
            return
        org = str(a["org"])
        name = self.world.name(org)
        self.expect_state("audit.attestations", ev, TaskState.APPROVED)
        if fn != "acknowledge_attestation" or record is None or record.kind != kind:
            self.fail(
                "audit.attestations",
                f"{name}'s acknowledgement at {self.where(ev)} is of "
                "no analysis attestation the history holds",
            )
            return
        if not self.roles.get(org, 0) & ChainRole.DATA_PROVIDER:
            self.fail("audit.attestations", f"{name} acknowledged but provides no data")
        self.by_org_key("audit.attestations", ev, org, f"{name}'s acknowledgement")
        if org in self.acked:
            self.fail("audit.attestations", f"{name} acknowledged twice")
        self.acked[org] = key
        record.acks.add(org)
        if int(a["acks"]) != len(record.acks):
            self.fail(
                "audit.attestations",
                f"the acknowledgement count at {self.where(ev)} says "
                f"{a['acks']}, the history {len(record.acks)}",
            )
        self.use(self.pin_of(record), pos, ev, f"{name}'s acknowledgement")
        self.item(
            ev,
            f"{name} verified and acknowledged the analysis runtime "
            f"({len(record.acks)}/{len(self.providers())})",
            actor=name,
        )

    def pin_of(self, record: _Record) -> _Pin | None:
        return self.pinned(record.kind, record.tee, record.measurement)

    def on_ComponentBound(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        kind = int(a["kind"])
        key = (str(a["evidence"]).lower(), str(a["component"]).lower())
        record = self.records.get(key)
        check = "audit.prediction" if kind == ChainComponent.PREDICTION else "audit.attestations"
        if record is None or record.kind != kind:
            self.fail(check, f"{self.where(ev)} binds a component with no attestation record")
            return
        if not self.same_tx(ev, "AttestationAcknowledged"):
            self.fail(check, f"{self.where(ev)} binds without an acknowledgement in the same call")
        if kind == ChainComponent.ANALYSIS:
            missing = [self.world.name(p) for p in self.providers() if p not in record.acks]
            if missing:
                self.fail(
                    "audit.attestations",
                    f"the analysis runtime was bound before {', '.join(missing)} acknowledged it",
                )
            if self.analysis is not None:
                self.fail("audit.attestations", "a second analysis runtime was bound")
            self.analysis = record
        else:
            if self.prediction is not None:
                self.fail("audit.prediction", "a second prediction runtime was bound")
            self.prediction = record
        what = ChainComponent(kind).component.value
        self.item(ev, f"{what} runtime {record.component} bound to the task", actor="chain")

    def on_DataCommitmentPosted(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        org, kind, commitment = str(a["org"]), int(a["kind"]), str(a["commitment"])
        name = self.world.name(org)
        self.expect_state("audit.commitments", ev, TaskState.RUNNING)
        if not self.roles.get(org, 0) & ChainRole.DATA_PROVIDER:
            self.fail("audit.commitments", f"a commitment for {name}, which provides no data")
        if kind == ChainComponent.GATEWAY:
            self.by_org_key("audit.commitments", ev, org, f"{name}'s gateway commitment")
            if org in self.gateway_commit:
                self.fail("audit.commitments", f"{name}'s gateway committed twice")
            self.gateway_commit[org] = commitment
            self.use_gateway(pos, ev, f"{name}'s gateway commitment")
            self.item(ev, f"the {name} gateway committed what it sent: {commitment}", actor=name)
        else:
            if self.analysis is None or ev.actor.lower() != self.analysis.component.lower():
                self.fail(
                    "audit.commitments",
                    f"the runtime commitment for {name} at "
                    f"{self.where(ev)} was not sent by the bound analysis runtime",
                )
            else:
                self.use(self.pin_of(self.analysis), pos, ev, "the runtime's commitment")
            if org in self.runtime_commit:
                self.fail("audit.commitments", f"the runtime committed {name}'s data twice")
            self.runtime_commit[org] = commitment
            self.item(
                ev,
                f"the analysis runtime committed what it received from {name}: {commitment}",
                actor="analysis runtime",
            )

    def on_CommitmentMatched(self, pos: int, ev: ChainEvent) -> None:
        org, commitment = str(ev.args["org"]), str(ev.args["commitment"])
        g, r = self.gateway_commit.get(org), self.runtime_commit.get(org)
        if g is None or r is None or not (g == r == commitment):
            self.fail(
                "audit.commitments",
                f"{self.world.name(org)} marked matched at "
                f"{self.where(ev)}, but the commitments were {g} and {r}",
            )
        self.matched.add(org)
        self.item(ev, f"the commitments for {self.world.name(org)} match", actor="chain")

    def on_CommitmentMismatched(self, pos: int, ev: ChainEvent) -> None:
        org = str(ev.args["org"])
        name = self.world.name(org)
        self.mismatched.add(org)
        self.fail(
            "audit.commitments",
            f"{name}'s gateway committed {ev.args['gateway']} but the runtime "
            f"received {ev.args['runtime']}: the data differ, the task is disputed",
        )
        self.item(ev, f"the commitments for {name} DIFFER", actor="chain")

    def on_ModelCommitted(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        kind, commitment = int(a["kind"]), str(a["commitment"])
        if kind == ChainComponent.ANALYSIS:
            self.expect_state("audit.model", ev, TaskState.RUNNING)
            if self.analysis is None or ev.actor.lower() != self.analysis.component.lower():
                self.fail(
                    "audit.model", f"{self.where(ev)} was not sent by the bound analysis runtime"
                )
            else:
                self.use(self.pin_of(self.analysis), pos, ev, "the model commitment")
            unmatched = [self.world.name(p) for p in self.providers() if p not in self.matched]
            if unmatched:
                self.fail(
                    "audit.model",
                    f"the model was committed before {', '.join(unmatched)}'s commitments matched",
                )
            if commitment == ZERO32:
                self.fail("audit.model", "the model commitment is empty")
            self.model, self.metrics = commitment, str(a["metrics_digest"])
            self.item(
                ev,
                f"model committed {commitment}, released metrics {self.metrics}",
                actor="analysis runtime",
            )
            return
        self.expect_state("audit.prediction", ev, TaskState.TRAINED)
        if self.prediction is None or ev.actor.lower() != self.prediction.component.lower():
            self.fail(
                "audit.prediction", f"{self.where(ev)} was not sent by the bound prediction runtime"
            )
        else:
            self.use(self.pin_of(self.prediction), pos, ev, "the prediction model commitment")
        self.prediction_model = commitment
        if self.model is None or not hmac.compare_digest(commitment.lower(), self.model.lower()):
            self.fail(
                "audit.prediction",
                f"the prediction runtime loaded {commitment}, "
                f"not the committed model {self.model or 'none'}",
            )
        self.item(
            ev,
            f"the prediction runtime loaded model {commitment}",
            actor="prediction runtime",
        )

    def on_ComponentAborted(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        kind, reason = int(a["kind"]), str(a["reason"])
        bound = self.analysis if kind == ChainComponent.ANALYSIS else self.prediction
        if bound is None or ev.actor.lower() != bound.component.lower():
            self.fail(
                "audit.transitions",
                f"{self.where(ev)}: an abort by a component the task does not bind",
            )
        if not reason:
            self.fail("audit.transitions", f"{self.where(ev)}: a component abort without reason")
        runtimes = (ChainComponent.ANALYSIS, ChainComponent.PREDICTION)
        what = ChainComponent(kind).component.value if kind in runtimes else "unknown"
        self.item(ev, f"the {what} runtime aborted the task: {reason}", actor=f"{what} runtime")

    def on_AuditRootPosted(self, pos: int, ev: ChainEvent) -> None:
        a = ev.args
        batch, count = int(a["batch"]), int(a["count"])
        self.expect_state("audit.audit_roots", ev, TaskState.SERVING)
        if self.prediction is None or ev.actor.lower() != self.prediction.component.lower():
            self.fail(
                "audit.audit_roots", f"batch {batch} was not posted by the bound prediction runtime"
            )
        elif (pin := self.pin_of(self.prediction)) is not None:
            m = self.world.measurements.get(pin.mid)
            if m is not None and m.revoked_at is not None and m.revoked_at < pos:
                self.note(
                    "audit.audit_roots",
                    f"batch {batch} was posted after the prediction "
                    "measurement's revocation (its leaves should be refusals)",
                )
        if batch != self.batches:
            self.fail("audit.audit_roots", f"batch {batch} where batch {self.batches} was next")
        if count <= 0 or str(a["root"]) == ZERO32:
            self.fail("audit.audit_roots", f"batch {batch} is empty")
        self.batches += 1
        self.audited += count
        self.item(
            ev,
            f"audit batch {batch}: {count} requests, root {a['root']}",
            actor="prediction runtime",
        )


def _verdicts(
    replay: _Replay, record: TaskView | None, receipts: Sequence[Receipt], now: int
) -> list[Check]:
    visited, providers = replay.visited, replay.providers()
    reached = {
        "audit.signatures": replay.relayed_checked > 0,
        "audit.attestations": TaskState.RUNNING in visited or bool(replay.acked),
        "audit.commitments": bool(replay.gateway_commit or replay.runtime_commit)
        or TaskState.TRAINED in visited,
        "audit.model": TaskState.TRAINED in visited or replay.model is not None,
        "audit.prediction": TaskState.SERVING in visited
        or any(r.kind == ChainComponent.PREDICTION for r in replay.records.values()),
        "audit.audit_roots": TaskState.SERVING in visited,
        "audit.receipts": bool(receipts),
    }
    details = {
        "audit.history": f"{_n(replay.task_events, 'task event')} replayed among "
        f"{_n(replay.events_seen, 'consortium event')}",
        "audit.proposal": f"{len(replay.parties)} participants, {len(replay.pins)} pins",
        "audit.transitions": " → ".join(s.name.title() for s in replay.path),
        "audit.approvals": f"{len(replay.approved)} of {len(replay.parties)} approved "
        f"({sum(replay.approved.values())} relayed)",
        "audit.signatures": f"{_n(replay.relayed_checked, 'relayed signature')} recovered"
        if replay.relayed_checked
        else "no relayed approvals",
        "audit.measurements": ", ".join(p.label() for p in replay.pins),
        "audit.revocations": "no use after a revocation",
        "audit.attestations": f"{len(replay.acked)} of {len(providers)} providers acknowledged",
        "audit.commitments": f"{len(replay.matched)} of {len(providers)} providers matched",
        "audit.model": f"model {replay.model or 'none'}",
        "audit.prediction": "prediction runtime loaded " + (replay.prediction_model or "none"),
        "audit.audit_roots": f"{_n(replay.batches, 'batch', 'batches')}, "
        f"{_n(replay.audited, 'audit record')}",
        "audit.receipts": _n(len(receipts), "receipt") + " checked",
        "audit.deadline": f"deadline {_when(replay.deadline)}" if replay.deadline else "",
        "audit.record": "state, counts, bindings and commitments agree",
    }
    # end-of-history obligations
    if TaskState.RUNNING in visited and replay.analysis is None:
        replay.fail("audit.attestations", "the task is Running with no analysis runtime bound")
    if TaskState.TRAINED in visited:
        missing = [replay.world.name(p) for p in providers if p not in replay.matched]
        if missing:
            replay.fail("audit.commitments", f"no matched commitments for {', '.join(missing)}")
    if TaskState.SERVING in visited and replay.prediction is None:
        replay.fail("audit.prediction", "the task is Serving with no prediction runtime bound")
    if not receipts:
        details["audit.receipts"] = "no receipts given"
    if replay.state in _UNFINISHED and now > replay.deadline:
        replay.fail(
            "audit.deadline",
            f"the task is still {replay.state.name.title()} at {_when(now)}, past its deadline "
            f"{_when(replay.deadline)}: anyone may abort it",
        )
    _compare_record(replay, replay.consortium, record)
    out = []
    for cid, title in CHECKS:
        problems = replay.problems[cid]
        if problems:
            verdict = "fail"
            detail = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        elif not reached.get(cid, True):
            verdict, detail = "not_reached", details[cid]
        else:
            verdict, detail = "pass", details[cid]
        notes = replay.notes[cid]
        if notes and verdict != "fail":
            detail += "; note: " + "; ".join(notes)
        out.append(Check(cid, title, verdict, detail, tuple(problems)))  # type: ignore[arg-type]
    return out


def _compare_record(replay: _Replay, consortium: Consortium, record: TaskView | None) -> None:
    if record is None:
        replay.fail("audit.record", "the contract holds no record of the task")
        return
    names = replay.world.name
    want: list[tuple[str, Any, Any]] = [
        ("state", record.state, replay.state),
        ("approvals", record.approvals, len(replay.approved)),
        ("provider acknowledgements", record.acknowledgements, len(replay.acked)),
        ("matched commitments", record.matched_commitments, len(replay.matched)),
        (
            "analysis runtime",
            (record.analysis or "").lower(),
            replay.analysis.component.lower() if replay.analysis else "",
        ),
        (
            "prediction runtime",
            (record.prediction or "").lower(),
            replay.prediction.component.lower() if replay.prediction else "",
        ),
        (
            "model commitment",
            _hex(record.model_commitment) if record.model_commitment else None,
            replay.model,
        ),
        ("audit batches", record.audit_batches, replay.batches),
        ("audited predictions", record.audited_predictions, replay.audited),
        ("deadline", record.deadline, replay.deadline),
        ("participants", sorted(record.participants), sorted(names(p) for p in replay.parties)),
        (
            "pins",
            sorted((int(p.kind), int(p.tee), _hex(p.digest)) for p in record.measurements),
            sorted((p.kind, p.tee, p.digest) for p in replay.pins),
        ),
    ]
    if replay.analysis is not None:
        bound = consortium.attestation(
            record.task_id, replay.analysis.evidence, replay.analysis.component
        )
        want.append(
            (
                "acknowledgements of the analysis runtime",
                bound.acks if bound else 0,
                len(replay.analysis.acks),
            )
        )
    for what, stored, replayed in want:
        if stored != replayed:
            replay.fail(
                "audit.record",
                f"the contract stores {what} {stored!r}, the history gives {replayed!r}",
            )


def parse_task_id(task_id: str | bytes) -> bytes:
    """32 bytes from ``0x`` + 64 hex digits (or 32 raw bytes), else ``audit.task.bad_id``."""
    try:
        tid = bytes.fromhex(task_id.removeprefix("0x")) if isinstance(task_id, str) else task_id
    except ValueError:
        raise ChainAuditError(
            f"a task id is 0x and 64 hex digits, got {task_id!r:.80}", id="audit.task.bad_id"
        ) from None
    if len(tid) != 32:
        raise ChainAuditError(
            f"a task id is 32 bytes (64 hex digits), got {len(tid)}", id="audit.task.bad_id"
        )
    return tid


def audit_task(
    consortium: Consortium,
    task_id: bytes | str,
    *,
    events: Sequence[ChainEvent] | None = None,
    receipts: Sequence[Receipt] = (),
    on_progress: Callable[[str], None] | None = None,
) -> TaskAudit:
    """Re-verify a task from the chain alone: one verdict per check, and its timeline.

    ``events`` are the consortium's events from its deployment block in chain order (read
    here when not given); ``receipts`` are prediction receipts a requester holds. Raises
    :class:`ChainAuditError` (``audit.task.unknown``) for a task the history never proposed.
    """
    tid = parse_task_id(task_id)
    task_hex = "0x" + tid.hex()
    history = list(read_events(consortium) if events is None else events)
    if not any(e.name == "TaskProposed" and e.args.get("task_id") == task_hex for e in history):
        raise ChainAuditError(
            f"the chain's history holds no task {task_hex} on {consortium.address}",
            id="audit.task.unknown",
        )
    chain = _Chain(consortium)
    replay = _Replay(consortium, task_hex, chain)
    if on_progress is not None:
        on_progress(f"replaying {len(history)} events")
    replay.run(history)
    try:
        record: TaskView | None = consortium.task(tid)
    except LedgerError as exc:
        if exc.id != "ledger.task.unknown":
            raise
        record = None
    latest = consortium.chain.block_number()
    now = chain.block(latest)[1]
    for receipt in receipts:
        _check_receipt(replay, consortium, history, receipt)
    checks = _verdicts(replay, record, receipts, now)
    return TaskAudit(
        task_id=tid,
        contract=consortium.address,
        chain_id=consortium.chain.chain_id,
        state=replay.state.name.title(),
        checks=checks,
        timeline=replay.timeline,
        events_read=len(history),
        receipts_checked=len(receipts),
    )


def _check_receipt(
    replay: _Replay, consortium: Consortium, history: Sequence[ChainEvent], receipt: Receipt
) -> None:
    if "0x" + receipt.leaf.task_id.hex() != replay.task_hex:
        replay.fail("audit.receipts", f"a receipt for another task (batch {receipt.batch})")
        return
    try:
        verify_receipt(receipt, consortium, events=history)
    except ChronosealError as exc:
        replay.fail(
            "audit.receipts",
            f"receipt for batch {receipt.batch} index {receipt.index}: [{exc.id}] {exc.message}",
        )
