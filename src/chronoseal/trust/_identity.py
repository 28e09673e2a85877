"""A runtime's RA-TLS identity over its lifetime: made, posted, served and renewed."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

from chronoseal.channel import DEFAULT_VALIDITY, ChannelServer, RaTlsIdentity
from chronoseal.errors import ChronosealError
from chronoseal.ledger import ComponentSession, Receipt, RecentBlocks
from chronoseal.spec import Component, task_id
from chronoseal.trust._task import TaskTrust

REATTEST_BLOCKS = 32
"""Blocks after which a runtime re-attests: the peers accept evidence bound to one of the
last blocks only, so a long-lived runtime must renew before its evidence falls out."""


class RuntimeIdentity:
    """The identity a runtime serves under, renewed before its evidence ages out of the
    peers' freshness window (``reattest_blocks`` behind the chain's head) or its certificate
    is half its ``validity`` old. A renewal rotates every server made here: new sessions get
    the new identity, open ones keep theirs."""

    def __init__(
        self,
        trust: TaskTrust,
        *,
        validity: timedelta = DEFAULT_VALIDITY,
        reattest_blocks: int = REATTEST_BLOCKS,
    ) -> None:
        self.trust = trust
        self.validity = validity
        self.reattest_blocks = reattest_blocks
        self._current: RaTlsIdentity | None = None
        self._at = 0.0  # monotonic time of the current identity
        self._block = 0  # chain height when it was made
        self._servers: list[ChannelServer] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> RaTlsIdentity | None:
        return self._current

    def _require(self) -> RaTlsIdentity:
        if self._current is None:
            raise ChronosealError(
                f"the {self.trust.component} runtime has no identity yet: it attests in start()",
                id="trust.identity.not_made",
            )
        return self._current

    def renew(self, blocks: RecentBlocks | None = None) -> RaTlsIdentity:
        """Fresh keys and evidence bound to the newest block, served from now on."""
        consortium = self.trust.consortium
        identity = self.trust.identity(blocks or RecentBlocks(consortium), validity=self.validity)
        with self._lock:
            self._current = identity
            self._at = time.monotonic()
            self._block = consortium.chain.block_number()
            for server in self._servers:
                server.rotate(identity)
        return identity

    def due(self) -> bool:
        """Whether the evidence is about to leave the peers' freshness window."""
        if self._current is None:
            return True
        aged = time.monotonic() - self._at >= self.validity.total_seconds() / 2
        behind = self.trust.consortium.chain.block_number() - self._block
        return aged or behind >= self.reattest_blocks

    def server(self, peer: Component, blocks: RecentBlocks) -> ChannelServer:
        """Serve the task's ``peer`` under this identity, rotated at each renewal."""
        server = self.trust.server(self._require(), peer, blocks)
        with self._lock:
            self._servers.append(server)
        return server

    def post(self, session: ComponentSession) -> Receipt:
        """Post the current evidence for the task: the runtime's measurement as pinned, the
        hash of its evidence and its TLS key's fingerprint, which the peers then check."""
        identity = self._require()
        component = self.trust.component
        return session.post_attestation(
            task_id(self.trust.spec),
            component,
            self.trust.attester.tee,
            self.trust.spec.measurements.pins()[component].digest,
            hashlib.sha256(identity.evidence.to_bytes()).digest(),
            identity.fingerprint,
        )
