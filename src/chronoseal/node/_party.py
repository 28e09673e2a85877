"""A party's own reviewer on chain (``chronoseal party serve``): it reacts only to events.

For every task proposed that names the party, it takes the spec *it* holds for that task id
(from its spec directory: the proposer sends the spec out of band; the chain holds only its
hash), reviews it against its own config and consent, and approves it with its own key — or
a signature someone else relays — or aborts it on chain with the refusal ids in its log.
Afterwards it keeps watch: a task it is in whose pinned measurement is revoked before the
model exists, or that is left unfinished past its deadline, it aborts. Its block cursor and
decisions live in its state directory, so a restart neither misses nor repeats an event.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from chronoseal.attest import installed_measurement
from chronoseal.errors import ChainRevert, ChronosealError, LedgerError
from chronoseal.ledger import (
    ChainEvent,
    Consortium,
    EventStream,
    Session,
    TaskState,
    TaskView,
    onchain_task,
    usable_pins,
)
from chronoseal.spec import (
    PartyConfig,
    TaskSpec,
    load_spec,
    resolve_measurements,
    review_task,
    task_id,
)

from ._health import Health, Log

#: States in which a revoked pin still matters: no model exists yet.
_BEFORE_MODEL = (TaskState.PROPOSED, TaskState.APPROVED, TaskState.RUNNING)
_UNFINISHED = (TaskState.PROPOSED, TaskState.APPROVED, TaskState.RUNNING, TaskState.TRAINED)
_FINAL = (TaskState.RETIRED, TaskState.ABORTED)


@dataclass(frozen=True)
class Decision:
    """What the party did about one task, and why (refusal ids)."""

    task: str
    action: str  # approved | refused | waiting_spec | aborted_revoked | aborted_deadline
    problems: tuple[tuple[str, str], ...] = ()


@dataclass
class _State:
    decisions: dict[str, Decision] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)


SpecSource = Callable[[], Mapping[bytes, TaskSpec]]


def load_task(spec_path: Path) -> TaskSpec:
    """A task file with its ``installed`` pins resolved: what its id is computed from."""
    return resolve_measurements(load_spec(spec_path), installed_measurement)


def spec_directory(path: Path, log: Log) -> SpecSource:
    """The specs a party holds, as files in a directory (re-read when a file changes)."""
    cache: dict[Path, tuple[float, TaskSpec | None]] = {}

    def load() -> Mapping[bytes, TaskSpec]:
        out: dict[bytes, TaskSpec] = {}
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            try:
                st = file.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # a FIFO or device named *.toml is no spec, and reading it blocks
            mtime = st.st_mtime
            if file not in cache or cache[file][0] != mtime:
                try:
                    cache[file] = (mtime, load_task(file))
                except ChronosealError as exc:
                    log(f"spec {file} is unusable: [{exc.id}] {exc.message}", event=exc.id)
                    cache[file] = (mtime, None)
            spec = cache[file][1]
            if spec is not None:
                out[task_id(spec)] = spec
        return out

    return load


class PartyAgent:
    """One party's reviewer: ``step()`` reads the new events once and acts on them."""

    def __init__(
        self,
        consortium: Consortium,
        party: PartyConfig,
        specs: SpecSource,
        org_key: LocalAccount,
        *,
        log: Log,
        state_dir: Path | None = None,
        relay: Session | None = None,
        health: Health | None = None,
    ) -> None:
        self.consortium = consortium
        self.party = party
        self.name = party.party.name
        self.specs = specs
        self.session = consortium.as_org(self.name, org_key.key)
        self.relay = relay
        self.log = log
        self.health = health
        self.state_dir = state_dir
        cursor = None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            cursor = state_dir / f"party-{self.name}.cursor.json"
        self.events = EventStream(consortium, cursor)
        self.state = self._load()
        self._deadline: dict[str, int] = {}  # deadlines never change: read each once

    # ------------------------------------------------------------------ persistence

    def _state_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"party-{self.name}.json"

    def _load(self) -> _State:
        path = self._state_path()
        if path is None or not path.exists():
            return _State()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            decisions = {
                d["task"]: Decision(d["task"], d["action"], tuple(map(tuple, d["problems"])))
                for d in doc["decisions"]
            }
            return _State(decisions, set(doc["pending"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"party state {path} is unreadable: {exc}", id="party.state.unreadable"
            ) from exc

    def _save(self) -> None:
        path = self._state_path()
        if path is None:
            return
        doc = {
            "decisions": [
                {"task": d.task, "action": d.action, "problems": [list(p) for p in d.problems]}
                for d in self.state.decisions.values()
            ],
            "pending": sorted(self.state.pending),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)

    # ------------------------------------------------------------------ the loop

    @property
    def decisions(self) -> dict[str, Decision]:
        return dict(self.state.decisions)

    def step(self) -> list[Decision]:
        """Read the blocks since the cursor; review new tasks, re-check the ones we are in."""
        made: list[Decision] = []
        fresh = self.events.poll()
        if self.health is not None:
            self.health.set_ready(True)
        for ev in fresh:
            tid = ev.args.get("task_id")
            if ev.name == "TaskProposed" and isinstance(tid, str) and self._names_me(tid):
                self.state.pending.add(tid)
            elif ev.name == "MeasurementRevoked":
                made += self._on_revocation(ev)
        for tid in sorted(self.state.pending):
            decision = self._review(tid)
            if decision is not None:
                made.append(decision)
        made += self._deadlines()
        self._save()
        return made

    def _names_me(self, tid: str) -> bool:
        view = self._view(tid)
        return view is not None and self.name in view.participants

    def _view(self, tid: str) -> TaskView | None:
        try:
            return self.consortium.task(tid)
        except LedgerError as exc:
            if exc.id == "ledger.task.unknown":
                return None
            raise

    def _decide(self, decision: Decision) -> Decision:
        self.state.decisions[decision.task] = decision
        self.state.pending.discard(decision.task)
        return decision

    def _review(self, tid: str) -> Decision | None:
        view = self._view(tid)
        if view is None or view.state is not TaskState.PROPOSED:
            self.state.pending.discard(tid)  # approved by us before a restart, or over
            return None
        if self.name in view.approved_by:
            self.state.pending.discard(tid)
            return None
        spec = self.specs().get(view.task_id)
        if spec is None:
            earlier = self.state.decisions.get(tid)
            if earlier is None or earlier.action != "waiting_spec":
                self.log(
                    f"task {tid} names {self.name}, but no spec this party holds hashes to it: "
                    "waiting for the proposer's spec file",
                    event="party.task.unknown_spec",
                )
                self.state.decisions[tid] = Decision(tid, "waiting_spec")
            return None
        problems = review_task(
            self.party, spec, onchain_task(view), usable_pins(self.consortium, view)
        )
        if problems:
            pairs = tuple((p.id, p.message) for p in problems)
            self._abort(tid)
            self.log(
                f"refused task {tid} and aborted it on chain: "
                + "; ".join(f"[{i}] {m}" for i, m in pairs),
                event=problems[0].id,
            )
            return self._decide(Decision(tid, "refused", pairs))
        try:
            if self.relay is not None:
                self.relay.relay_task_approval(
                    view.task_id, self.name, self.session.sign_task_approval(view.task_id)
                )
                how = f"EIP-712 signature relayed by {self.relay.address}"
            else:
                self.session.approve_task(view.task_id)
                how = "transaction"
        except ChainRevert as exc:
            self.log(f"the chain refused our approval of {tid}: [{exc.id}]", event=exc.id)
            return self._decide(Decision(tid, "refused", ((exc.id, exc.message),)))
        self.log(f"reviewed task {tid} and approved it ({how})", event="party.task.approved")
        return self._decide(Decision(tid, "approved"))

    def _abort(self, tid: str) -> bool:
        try:
            self.session.abort_task(tid)
            return True
        except ChainRevert as exc:  # e.g. already aborted by someone else
            self.log(f"could not abort {tid}: [{exc.id}] {exc.message}", event=exc.id)
            return False

    def _mine(self) -> list[str]:
        return [t for t, d in self.state.decisions.items() if d.action == "approved"]

    def _on_revocation(self, ev: ChainEvent) -> list[Decision]:
        made = []
        for tid in self._mine():
            view = self._view(tid)
            if view is None or view.state not in _BEFORE_MODEL:
                continue
            if all(usable_pins(self.consortium, view)):
                continue
            if self._abort(tid):
                self.log(
                    f"a measurement task {tid} pins was revoked (block {ev.block_number}) "
                    "before its model existed: aborted it on chain",
                    event="party.task.pin_revoked",
                )
                made.append(self._decide(Decision(tid, "aborted_revoked")))
        return made

    def _deadlines(self) -> list[Decision]:
        made: list[Decision] = []
        mine = self._mine()
        if not mine:
            return made
        now = int(self.consortium.chain.w3.eth.get_block("latest")["timestamp"])
        for tid in mine:
            if tid in self._deadline and now <= self._deadline[tid]:
                continue
            view = self._view(tid)
            if view is None:
                continue
            self._deadline[tid] = view.deadline
            if view.state not in _UNFINISHED or now <= view.deadline:
                continue
            if self._abort(tid):
                self.log(
                    f"task {tid} is still {view.state.name.title()} past its deadline: "
                    "aborted it on chain",
                    event="party.task.deadline_abort",
                )
                made.append(self._decide(Decision(tid, "aborted_deadline")))
        return made
