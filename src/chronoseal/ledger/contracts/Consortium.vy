#pragma version 0.4.3
#pragma evm-version shanghai
#pragma optimize codesize
"""
@title chronoseal consortium: members, measurements and tasks in one contract
@notice Every refusal reverts with a stable id (`ledger.<subject>.<reason>`); the
        Python client turns it into `ChainRevert.id`. docs/ledger.md lists them all.
        Task states: 0 none, 1 Proposed, 2 Approved, 3 Running, 4 Trained, 5 Serving,
        6 Retired, 7 Aborted, 8 Disputed. Every state change goes through `_transition`,
        which checks the edge against EDGES.
"""

MAX_MEMBERS: constant(uint256) = 32
MAX_KEYS: constant(uint256) = 8
MAX_PARTIES: constant(uint256) = 16
MAX_PINS: constant(uint256) = 8

KIND_GATEWAY: constant(uint8) = 1
KIND_ANALYSIS: constant(uint8) = 2
KIND_PREDICTION: constant(uint8) = 3
# The analysis runtime's Dask workers: approved and pinned like the others; appraised by the
# runtime, which alone acts on chain for the analysis and posts their attestations.
KIND_ANALYSIS_WORKER: constant(uint8) = 4
TEE_SIMULATED: constant(uint8) = 1
TEE_MAX: constant(uint8) = 6

ROLE_DATA_PROVIDER: constant(uint8) = 1
ROLE_RESULT_RECIPIENT: constant(uint8) = 2

S_NONE: constant(uint8) = 0
S_PROPOSED: constant(uint8) = 1
S_APPROVED: constant(uint8) = 2
S_RUNNING: constant(uint8) = 3
S_TRAINED: constant(uint8) = 4
S_SERVING: constant(uint8) = 5
S_RETIRED: constant(uint8) = 6
S_ABORTED: constant(uint8) = 7
S_DISPUTED: constant(uint8) = 8

# Allowed edges: bit (from * 16 + to). None->Proposed, Proposed->Approved|Aborted,
# Approved->Running|Aborted, Running->Trained|Aborted|Disputed,
# Trained->Serving|Aborted|Disputed, Serving->Retired|Aborted, Disputed->Aborted.
EDGES: constant(uint256) = (
    (1 << 1)
    | (1 << (16 + 2)) | (1 << (16 + 7))
    | (1 << (32 + 3)) | (1 << (32 + 7))
    | (1 << (48 + 4)) | (1 << (48 + 7)) | (1 << (48 + 8))
    | (1 << (64 + 5)) | (1 << (64 + 7)) | (1 << (64 + 8))
    | (1 << (80 + 6)) | (1 << (80 + 7))
    | (1 << (128 + 7))
)

P_ADD_MEMBER: constant(uint8) = 1
P_REMOVE_MEMBER: constant(uint8) = 2
P_SET_SIMULATED: constant(uint8) = 3

M_PROPOSED: constant(uint8) = 1
M_APPROVED: constant(uint8) = 2
M_REVOKED: constant(uint8) = 3

SECP256K1_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TASK_APPROVAL_TYPEHASH: constant(bytes32) = keccak256("TaskApproval(bytes32 taskId,bytes32 org)")
MEASUREMENT_APPROVAL_TYPEHASH: constant(bytes32) = keccak256(
    "MeasurementApproval(uint8 kind,uint8 tee,bytes32 measurement,bytes32 org)"
)
NAME_HASH: constant(bytes32) = keccak256("chronoseal")
VERSION_HASH: constant(bytes32) = keccak256("1")


struct Proposal:
    kind: uint8
    subject: bytes32
    name: String[64]
    key: address
    flag: bool
    proposer: bytes32
    required: uint256
    approvals: uint256
    executed: bool


struct Measurement:
    kind: uint8
    tee: uint8
    digest: bytes32
    status: uint8
    proposer: bytes32
    required: uint256
    approvals: uint256


struct Pin:
    kind: uint8
    tee: uint8
    digest: bytes32


struct Task:
    state: uint8
    proposer: bytes32
    deadline: uint256
    required: uint256
    approvals: uint256
    providers: uint256
    acks: uint256
    matched: uint256
    analysis: address
    analysis_evidence: bytes32
    prediction: address
    prediction_evidence: bytes32
    model_commitment: bytes32
    metrics_digest: bytes32
    audit_batches: uint256
    audited_predictions: uint256


struct Attestation:
    kind: uint8
    tee: uint8
    measurement: bytes32
    evidence: bytes32
    tls_key: bytes32
    component: address
    acks: uint256


event MemberAdded:
    org: indexed(bytes32)
    name: String[64]
    key: address

event MemberRemoved:
    org: indexed(bytes32)

event KeyAdded:
    org: indexed(bytes32)
    key: indexed(address)
    actor: address

event KeyRemoved:
    org: indexed(bytes32)
    key: indexed(address)
    actor: address

event ProposalCreated:
    proposal_id: indexed(uint256)
    kind: indexed(uint8)
    org: indexed(bytes32)
    subject: bytes32
    name: String[64]
    key: address
    flag: bool
    required: uint256

event ProposalApproved:
    proposal_id: indexed(uint256)
    org: indexed(bytes32)
    approvals: uint256
    required: uint256

event ProposalExecuted:
    proposal_id: indexed(uint256)
    kind: indexed(uint8)
    subject: bytes32

event SimulatedTeeAllowedChanged:
    allowed: bool

event MeasurementProposed:
    measurement: indexed(bytes32)
    kind: indexed(uint8)
    org: indexed(bytes32)
    tee: uint8
    required: uint256

event MeasurementApproved:
    measurement: indexed(bytes32)
    kind: indexed(uint8)
    org: indexed(bytes32)
    tee: uint8
    approvals: uint256
    required: uint256
    usable: bool

event MeasurementRevoked:
    measurement: indexed(bytes32)
    kind: indexed(uint8)
    org: indexed(bytes32)
    tee: uint8

event TaskProposed:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    deadline: uint256
    required: uint256
    providers: uint256

event TaskApproved:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    actor: address
    approvals: uint256
    required: uint256
    relayed: bool

event TaskStateChanged:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    to_state: indexed(uint8)
    from_state: uint8
    actor: address

event AttestationPosted:
    task_id: indexed(bytes32)
    kind: indexed(uint8)
    component: indexed(address)
    tee: uint8
    measurement: bytes32
    evidence: bytes32
    tls_key: bytes32

event AttestationAcknowledged:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    kind: indexed(uint8)
    evidence: bytes32
    acks: uint256
    required: uint256

event ComponentBound:
    task_id: indexed(bytes32)
    kind: indexed(uint8)
    component: indexed(address)
    evidence: bytes32

event DataCommitmentPosted:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    kind: indexed(uint8)
    commitment: bytes32
    actor: address

event CommitmentMatched:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    commitment: bytes32

event CommitmentMismatched:
    task_id: indexed(bytes32)
    org: indexed(bytes32)
    gateway: bytes32
    runtime: bytes32

event ModelCommitted:
    task_id: indexed(bytes32)
    kind: indexed(uint8)
    component: indexed(address)
    commitment: bytes32
    metrics_digest: bytes32

event ComponentAborted:
    task_id: indexed(bytes32)
    kind: indexed(uint8)
    component: indexed(address)
    reason: String[64]

event AuditRootPosted:
    task_id: indexed(bytes32)
    batch: indexed(uint256)
    component: indexed(address)
    root: bytes32
    count: uint256


simulated_tee_allowed: public(bool)
members: DynArray[bytes32, MAX_MEMBERS]
is_member: public(HashMap[bytes32, bool])
org_name: public(HashMap[bytes32, String[64]])
keys: HashMap[bytes32, DynArray[address, MAX_KEYS]]
key_org: public(HashMap[address, bytes32])

proposal_count: public(uint256)
proposals: public(HashMap[uint256, Proposal])
proposal_approved: public(HashMap[uint256, HashMap[bytes32, bool]])

measurements: public(HashMap[bytes32, Measurement])
measurement_approved: public(HashMap[bytes32, HashMap[bytes32, bool]])

tasks: public(HashMap[bytes32, Task])
participants: HashMap[bytes32, DynArray[bytes32, MAX_PARTIES]]
pins: HashMap[bytes32, DynArray[Pin, MAX_PINS]]
task_roles: public(HashMap[bytes32, HashMap[bytes32, uint8]])
task_approved: public(HashMap[bytes32, HashMap[bytes32, bool]])
attestations: public(HashMap[bytes32, HashMap[bytes32, Attestation]])
acknowledged: public(HashMap[bytes32, HashMap[bytes32, bytes32]])
gateway_commitments: public(HashMap[bytes32, HashMap[bytes32, bytes32]])
runtime_commitments: public(HashMap[bytes32, HashMap[bytes32, bytes32]])


@deploy
def __init__(
    founder_names: DynArray[String[64], MAX_MEMBERS],
    founder_keys: DynArray[address, MAX_MEMBERS],
    allow_simulated_tee: bool,
):
    assert len(founder_names) > 0, "ledger.member.none"
    assert len(founder_names) == len(founder_keys), "ledger.member.bad_founders"
    for i: uint256 in range(len(founder_names), bound=MAX_MEMBERS):
        self._add_member(founder_names[i], founder_keys[i])
    self.simulated_tee_allowed = allow_simulated_tee
    log SimulatedTeeAllowedChanged(allowed=allow_simulated_tee)


# ---------------------------------------------------------------- membership


@view
@internal
def _sender_org() -> bytes32:
    org: bytes32 = self.key_org[msg.sender]
    assert org != empty(bytes32), "ledger.key.not_member"
    return org


@internal
def _add_member(name: String[64], key: address):
    org: bytes32 = keccak256(name)
    assert len(name) > 0, "ledger.member.bad_name"
    assert not self.is_member[org], "ledger.member.exists"
    assert key != empty(address), "ledger.key.invalid"
    assert self.key_org[key] == empty(bytes32), "ledger.key.exists"
    self.members.append(org)
    self.is_member[org] = True
    self.org_name[org] = name
    self.keys[org] = [key]
    self.key_org[key] = org
    log MemberAdded(org=org, name=name, key=key)


@internal
def _remove_member(org: bytes32):
    assert len(self.members) > 1, "ledger.member.last"
    for k: address in self.keys[org]:
        self.key_org[k] = empty(bytes32)
    self.keys[org] = []
    self.is_member[org] = False
    n: uint256 = len(self.members)
    for i: uint256 in range(n, bound=MAX_MEMBERS):
        if self.members[i] == org:
            self.members[i] = self.members[n - 1]
            self.members.pop()
            break
    log MemberRemoved(org=org)


@external
def propose_member(name: String[64], key: address) -> uint256:
    org: bytes32 = keccak256(name)
    assert len(name) > 0, "ledger.member.bad_name"
    assert not self.is_member[org], "ledger.member.exists"
    assert key != empty(address), "ledger.key.invalid"
    assert self.key_org[key] == empty(bytes32), "ledger.key.exists"
    return self._propose(P_ADD_MEMBER, org, name, key, False)


@external
def propose_member_removal(org: bytes32) -> uint256:
    assert self.is_member[org], "ledger.member.unknown"
    return self._propose(P_REMOVE_MEMBER, org, "", empty(address), False)


@external
def propose_simulated_tee_allowed(allowed: bool) -> uint256:
    return self._propose(P_SET_SIMULATED, empty(bytes32), "", empty(address), allowed)


@internal
def _propose(kind: uint8, subject: bytes32, name: String[64], key: address, flag: bool) -> uint256:
    org: bytes32 = self._sender_org()
    pid: uint256 = self.proposal_count + 1
    self.proposal_count = pid
    self.proposals[pid] = Proposal(
        kind=kind,
        subject=subject,
        name=name,
        key=key,
        flag=flag,
        proposer=org,
        required=len(self.members),
        approvals=0,
        executed=False,
    )
    log ProposalCreated(
        proposal_id=pid, kind=kind, org=org, subject=subject, name=name, key=key, flag=flag,
        required=len(self.members),
    )
    self._approve_proposal(pid, org)
    return pid


@external
def approve_proposal(proposal_id: uint256):
    self._approve_proposal(proposal_id, self._sender_org())


@internal
def _approve_proposal(pid: uint256, org: bytes32):
    p: Proposal = self.proposals[pid]
    assert p.kind != 0, "ledger.proposal.unknown"
    assert not p.executed, "ledger.proposal.executed"
    assert not self.proposal_approved[pid][org], "ledger.proposal.already_approved"
    self.proposal_approved[pid][org] = True
    p.approvals += 1
    log ProposalApproved(proposal_id=pid, org=org, approvals=p.approvals, required=p.required)
    if p.approvals >= p.required:
        p.executed = True
        if p.kind == P_ADD_MEMBER:
            self._add_member(p.name, p.key)
        elif p.kind == P_REMOVE_MEMBER:
            assert self.is_member[p.subject], "ledger.member.unknown"
            self._remove_member(p.subject)
        else:
            self.simulated_tee_allowed = p.flag
            log SimulatedTeeAllowedChanged(allowed=p.flag)
        log ProposalExecuted(proposal_id=pid, kind=p.kind, subject=p.subject)
    self.proposals[pid] = p


@external
def add_key(key: address):
    org: bytes32 = self._sender_org()
    assert key != empty(address), "ledger.key.invalid"
    assert self.key_org[key] == empty(bytes32), "ledger.key.exists"
    assert len(self.keys[org]) < MAX_KEYS, "ledger.key.too_many"
    self.keys[org].append(key)
    self.key_org[key] = org
    log KeyAdded(org=org, key=key, actor=msg.sender)


@external
def remove_key(key: address):
    org: bytes32 = self._sender_org()
    assert self.key_org[key] == org, "ledger.key.not_org_key"
    n: uint256 = len(self.keys[org])
    assert n > 1, "ledger.key.last"
    for i: uint256 in range(n, bound=MAX_KEYS):
        if self.keys[org][i] == key:
            self.keys[org][i] = self.keys[org][n - 1]
            self.keys[org].pop()
            break
    self.key_org[key] = empty(bytes32)
    log KeyRemoved(org=org, key=key, actor=msg.sender)


@view
@external
def member_list() -> DynArray[bytes32, MAX_MEMBERS]:
    return self.members


@view
@external
def org_keys(org: bytes32) -> DynArray[address, MAX_KEYS]:
    return self.keys[org]


# ---------------------------------------------------------- measurements


@pure
@internal
def _measurement_id(kind: uint8, tee: uint8, digest: bytes32) -> bytes32:
    return keccak256(abi_encode(kind, tee, digest))


@view
@internal
def _usable(mid: bytes32) -> bool:
    m: Measurement = self.measurements[mid]
    if m.status != M_APPROVED:
        return False
    return m.tee != TEE_SIMULATED or self.simulated_tee_allowed


@view
@external
def measurement_usable(kind: uint8, tee: uint8, digest: bytes32) -> bool:
    return self._usable(self._measurement_id(kind, tee, digest))


@external
def propose_measurement(kind: uint8, tee: uint8, digest: bytes32):
    org: bytes32 = self._sender_org()
    assert kind >= KIND_GATEWAY and kind <= KIND_ANALYSIS_WORKER, "ledger.measurement.bad_kind"
    assert tee >= TEE_SIMULATED and tee <= TEE_MAX, "ledger.measurement.bad_tee"
    assert digest != empty(bytes32), "ledger.measurement.empty"
    assert tee != TEE_SIMULATED or self.simulated_tee_allowed, "ledger.tee.simulated_not_allowed"
    mid: bytes32 = self._measurement_id(kind, tee, digest)
    assert self.measurements[mid].status == 0, "ledger.measurement.exists"
    self.measurements[mid] = Measurement(
        kind=kind, tee=tee, digest=digest, status=M_PROPOSED, proposer=org,
        required=len(self.members), approvals=0,
    )
    log MeasurementProposed(measurement=mid, kind=kind, org=org, tee=tee, required=len(self.members))
    self._approve_measurement(mid, org)


@external
def approve_measurement(kind: uint8, tee: uint8, digest: bytes32):
    self._approve_measurement(self._measurement_id(kind, tee, digest), self._sender_org())


@external
def approve_measurement_signed(
    kind: uint8, tee: uint8, digest: bytes32, org: bytes32, v: uint8, r: bytes32, s: bytes32
):
    struct_hash: bytes32 = keccak256(
        abi_encode(MEASUREMENT_APPROVAL_TYPEHASH, kind, tee, digest, org)
    )
    self._check_signature(struct_hash, org, v, r, s)
    self._approve_measurement(self._measurement_id(kind, tee, digest), org)


@internal
def _approve_measurement(mid: bytes32, org: bytes32):
    m: Measurement = self.measurements[mid]
    assert m.status != 0, "ledger.measurement.unknown"
    assert m.status != M_REVOKED, "ledger.measurement.revoked"
    assert not self.measurement_approved[mid][org], "ledger.measurement.already_approved"
    assert m.status == M_PROPOSED, "ledger.measurement.bad_state"
    self.measurement_approved[mid][org] = True
    m.approvals += 1
    if m.approvals >= m.required:
        m.status = M_APPROVED
    self.measurements[mid] = m
    log MeasurementApproved(
        measurement=mid, kind=m.kind, org=org, tee=m.tee, approvals=m.approvals,
        required=m.required, usable=m.status == M_APPROVED,
    )


@external
def revoke_measurement(kind: uint8, tee: uint8, digest: bytes32):
    org: bytes32 = self._sender_org()
    mid: bytes32 = self._measurement_id(kind, tee, digest)
    status: uint8 = self.measurements[mid].status
    assert status != 0, "ledger.measurement.unknown"
    assert status != M_REVOKED, "ledger.measurement.revoked"
    self.measurements[mid].status = M_REVOKED
    log MeasurementRevoked(measurement=mid, kind=kind, org=org, tee=tee)


# ---------------------------------------------------------- EIP-712


@view
@internal
def _domain_separator() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@view
@external
def domain_separator() -> bytes32:
    return self._domain_separator()


@view
@internal
def _check_signature(struct_hash: bytes32, org: bytes32, v: uint8, r: bytes32, s: bytes32):
    assert v == 27 or v == 28, "ledger.signature.invalid"
    assert convert(s, uint256) <= SECP256K1_HALF_N, "ledger.signature.invalid"
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "ledger.signature.invalid"
    assert self.key_org[signer] == org, "ledger.signature.not_org_key"


# ---------------------------------------------------------- tasks


@internal
def _transition(task_id: bytes32, to: uint8, org: bytes32):
    frm: uint8 = self.tasks[task_id].state
    bit: uint256 = convert(frm, uint256) * 16 + convert(to, uint256)
    assert (EDGES >> bit) & 1 == 1, "ledger.task.bad_state"
    self.tasks[task_id].state = to
    log TaskStateChanged(task_id=task_id, org=org, to_state=to, from_state=frm, actor=msg.sender)


@view
@internal
def _state(task_id: bytes32) -> uint8:
    state: uint8 = self.tasks[task_id].state
    assert state != S_NONE, "ledger.task.unknown"
    return state


@view
@internal
def _participant_org(task_id: bytes32) -> bytes32:
    org: bytes32 = self._sender_org()
    assert self.task_roles[task_id][org] != 0, "ledger.task.not_participant"
    return org


@view
@internal
def _provider_org(task_id: bytes32) -> bytes32:
    org: bytes32 = self._participant_org(task_id)
    assert self.task_roles[task_id][org] & ROLE_DATA_PROVIDER != 0, "ledger.task.not_data_provider"
    return org


@external
def propose_task(
    task_id: bytes32,
    parties: DynArray[bytes32, MAX_PARTIES],
    roles: DynArray[uint8, MAX_PARTIES],
    measurements: DynArray[Pin, MAX_PINS],
    deadline: uint256,
):
    org: bytes32 = self._sender_org()
    assert task_id != empty(bytes32), "ledger.task.bad_id"
    assert self.tasks[task_id].state == S_NONE, "ledger.task.exists"
    assert deadline > block.timestamp, "ledger.task.deadline_passed"
    assert len(parties) > 0 and len(parties) == len(roles), "ledger.task.bad_roles"
    providers: uint256 = 0
    recipients: uint256 = 0
    for i: uint256 in range(len(parties), bound=MAX_PARTIES):
        p: bytes32 = parties[i]
        assert self.is_member[p], "ledger.member.unknown"
        assert roles[i] != 0 and roles[i] <= 3, "ledger.task.bad_roles"
        assert self.task_roles[task_id][p] == 0, "ledger.task.duplicate_participant"
        self.task_roles[task_id][p] = roles[i]
        if roles[i] & ROLE_DATA_PROVIDER != 0:
            providers += 1
        if roles[i] & ROLE_RESULT_RECIPIENT != 0:
            recipients += 1
    assert self.task_roles[task_id][org] != 0, "ledger.task.not_participant"
    assert providers > 0 and recipients > 0, "ledger.task.bad_roles"
    assert len(measurements) > 0, "ledger.task.no_measurements"
    for m: Pin in measurements:
        mid: bytes32 = self._measurement_id(m.kind, m.tee, m.digest)
        status: uint8 = self.measurements[mid].status
        assert status != M_REVOKED, "ledger.measurement.revoked"
        assert self._usable(mid), "ledger.measurement.not_approved"
    self.participants[task_id] = parties
    self.pins[task_id] = measurements
    self.tasks[task_id].proposer = org
    self.tasks[task_id].deadline = deadline
    self.tasks[task_id].required = len(parties)
    self.tasks[task_id].providers = providers
    log TaskProposed(
        task_id=task_id, org=org, deadline=deadline, required=len(parties), providers=providers
    )
    self._transition(task_id, S_PROPOSED, org)


@external
def approve_task(task_id: bytes32):
    self._approve_task(task_id, self._sender_org(), False)


@external
def approve_task_signed(task_id: bytes32, org: bytes32, v: uint8, r: bytes32, s: bytes32):
    self._check_signature(keccak256(abi_encode(TASK_APPROVAL_TYPEHASH, task_id, org)), org, v, r, s)
    self._approve_task(task_id, org, True)


@internal
def _approve_task(task_id: bytes32, org: bytes32, relayed: bool):
    state: uint8 = self._state(task_id)
    assert self.task_roles[task_id][org] != 0, "ledger.task.not_participant"
    assert not self.task_approved[task_id][org], "ledger.task.already_approved"
    assert state == S_PROPOSED, "ledger.task.bad_state"
    assert block.timestamp <= self.tasks[task_id].deadline, "ledger.task.deadline_passed"
    for m: Pin in self.pins[task_id]:
        mid: bytes32 = self._measurement_id(m.kind, m.tee, m.digest)
        assert self.measurements[mid].status != M_REVOKED, "ledger.measurement.revoked"
    self.task_approved[task_id][org] = True
    approvals: uint256 = self.tasks[task_id].approvals + 1
    self.tasks[task_id].approvals = approvals
    required: uint256 = self.tasks[task_id].required
    log TaskApproved(
        task_id=task_id, org=org, actor=msg.sender, approvals=approvals, required=required,
        relayed=relayed,
    )
    if approvals == required:
        self._transition(task_id, S_APPROVED, org)


@external
def abort_task(task_id: bytes32):
    state: uint8 = self._state(task_id)
    org: bytes32 = self.key_org[msg.sender]
    if block.timestamp <= self.tasks[task_id].deadline:
        assert self.task_roles[task_id][org] != 0, "ledger.task.not_participant"
    self._transition(task_id, S_ABORTED, org)


@external
def abort_as_component(task_id: bytes32, reason: String[64]):
    """
    @notice A bound component gives up on the task with a refusal id (e.g. the analysis
            runtime finding too little history): Aborted, with the reason on chain.
    """
    state: uint8 = self._state(task_id)
    assert len(reason) > 0, "ledger.abort.no_reason"
    kind: uint8 = 0
    if msg.sender == self.tasks[task_id].analysis and (state == S_RUNNING or state == S_TRAINED):
        kind = KIND_ANALYSIS
    elif msg.sender == self.tasks[task_id].prediction and (state == S_TRAINED or state == S_SERVING):
        kind = KIND_PREDICTION
    assert kind != 0, "ledger.component.not_bound"
    log ComponentAborted(task_id=task_id, kind=kind, component=msg.sender, reason=reason)
    self._transition(task_id, S_ABORTED, empty(bytes32))


@external
def retire_task(task_id: bytes32):
    state: uint8 = self._state(task_id)
    org: bytes32 = self._participant_org(task_id)
    self._transition(task_id, S_RETIRED, org)


@view
@internal
def _pinned(task_id: bytes32, kind: uint8, tee: uint8, digest: bytes32) -> bool:
    for m: Pin in self.pins[task_id]:
        if m.kind == kind and m.tee == tee and m.digest == digest:
            return True
    return False


@external
def post_attestation(
    task_id: bytes32, kind: uint8, tee: uint8, measurement: bytes32, evidence: bytes32,
    tls_key: bytes32,
):
    want: uint8 = S_APPROVED
    if kind == KIND_PREDICTION:
        want = S_TRAINED
    elif kind == KIND_ANALYSIS_WORKER:
        # The bound analysis runtime posts each Dask worker it admitted (whose evidence binds
        # the runtime's key) before the worker receives the joined data.
        want = S_RUNNING
        self._from_bound(task_id, KIND_ANALYSIS)
    elif kind != KIND_ANALYSIS:
        raise "ledger.attestation.bad_kind"
    assert self._state(task_id) == want, "ledger.task.bad_state"
    assert evidence != empty(bytes32), "ledger.attestation.empty"
    # Keyed by (evidence, sender): a copied record is another record, and cannot block this
    # one; gateways acknowledge the record of the address the evidence itself binds.
    record: bytes32 = self._record(evidence, msg.sender)
    assert self.attestations[task_id][record].kind == 0, "ledger.attestation.exists"
    assert self._pinned(task_id, kind, tee, measurement), "ledger.measurement.not_pinned"
    mid: bytes32 = self._measurement_id(kind, tee, measurement)
    assert self.measurements[mid].status != M_REVOKED, "ledger.measurement.revoked"
    assert self._usable(mid), "ledger.measurement.not_approved"
    self.attestations[task_id][record] = Attestation(
        kind=kind, tee=tee, measurement=measurement, evidence=evidence, tls_key=tls_key,
        component=msg.sender, acks=0,
    )
    log AttestationPosted(
        task_id=task_id, kind=kind, component=msg.sender, tee=tee, measurement=measurement,
        evidence=evidence, tls_key=tls_key,
    )


@pure
@internal
def _record(evidence: bytes32, component: address) -> bytes32:
    return keccak256(concat(evidence, convert(component, bytes20)))


@view
@internal
def _from_bound(task_id: bytes32, kind: uint8):
    # The sender is the runtime the task binds as ``kind``, and what the audit flags is
    # refused here: nothing is taken from it once its attested measurement is revoked.
    t: Task = self.tasks[task_id]
    bound: address = t.analysis
    evidence: bytes32 = t.analysis_evidence
    if kind == KIND_PREDICTION:
        bound = t.prediction
        evidence = t.prediction_evidence
    assert msg.sender == bound, "ledger.component.not_bound"
    a: Attestation = self.attestations[task_id][self._record(evidence, bound)]
    mid: bytes32 = self._measurement_id(kind, a.tee, a.measurement)
    assert self.measurements[mid].status != M_REVOKED, "ledger.measurement.revoked"


@internal
def _attestation(task_id: bytes32, record: bytes32, kind: uint8) -> Attestation:
    a: Attestation = self.attestations[task_id][record]
    assert a.kind != 0, "ledger.attestation.unknown"
    assert a.kind == kind, "ledger.attestation.bad_kind"
    return a


@external
def acknowledge_attestation(task_id: bytes32, evidence: bytes32, component: address):
    assert self._state(task_id) == S_APPROVED, "ledger.task.bad_state"
    org: bytes32 = self._provider_org(task_id)
    record: bytes32 = self._record(evidence, component)
    a: Attestation = self._attestation(task_id, record, KIND_ANALYSIS)
    assert self.acknowledged[task_id][org] == empty(bytes32), "ledger.attestation.already_acknowledged"
    self.acknowledged[task_id][org] = record
    a.acks += 1
    self.attestations[task_id][record].acks = a.acks
    self.tasks[task_id].acks += 1
    providers: uint256 = self.tasks[task_id].providers
    log AttestationAcknowledged(
        task_id=task_id, org=org, kind=KIND_ANALYSIS, evidence=evidence, acks=a.acks,
        required=providers,
    )
    if a.acks == providers:
        self.tasks[task_id].analysis = a.component
        self.tasks[task_id].analysis_evidence = evidence
        log ComponentBound(task_id=task_id, kind=KIND_ANALYSIS, component=a.component, evidence=evidence)
        self._transition(task_id, S_RUNNING, org)


@internal
def _compare_commitments(task_id: bytes32, party: bytes32):
    g: bytes32 = self.gateway_commitments[task_id][party]
    r: bytes32 = self.runtime_commitments[task_id][party]
    if g == empty(bytes32) or r == empty(bytes32):
        return
    if g == r:
        self.tasks[task_id].matched += 1
        log CommitmentMatched(task_id=task_id, org=party, commitment=g)
    else:
        log CommitmentMismatched(task_id=task_id, org=party, gateway=g, runtime=r)
        self._transition(task_id, S_DISPUTED, party)


@external
def post_gateway_commitment(task_id: bytes32, commitment: bytes32):
    assert self._state(task_id) == S_RUNNING, "ledger.task.bad_state"
    org: bytes32 = self._provider_org(task_id)
    assert commitment != empty(bytes32), "ledger.commitment.empty"
    assert self.gateway_commitments[task_id][org] == empty(bytes32), "ledger.commitment.exists"
    self.gateway_commitments[task_id][org] = commitment
    log DataCommitmentPosted(
        task_id=task_id, org=org, kind=KIND_GATEWAY, commitment=commitment, actor=msg.sender
    )
    self._compare_commitments(task_id, org)


@external
def post_runtime_commitment(task_id: bytes32, party: bytes32, commitment: bytes32):
    assert self._state(task_id) == S_RUNNING, "ledger.task.bad_state"
    self._from_bound(task_id, KIND_ANALYSIS)
    assert self.task_roles[task_id][party] & ROLE_DATA_PROVIDER != 0, "ledger.task.not_data_provider"
    assert commitment != empty(bytes32), "ledger.commitment.empty"
    assert self.runtime_commitments[task_id][party] == empty(bytes32), "ledger.commitment.exists"
    self.runtime_commitments[task_id][party] = commitment
    log DataCommitmentPosted(
        task_id=task_id, org=party, kind=KIND_ANALYSIS, commitment=commitment, actor=msg.sender
    )
    self._compare_commitments(task_id, party)


@external
def post_model_commitment(task_id: bytes32, commitment: bytes32, metrics_digest: bytes32):
    assert self._state(task_id) == S_RUNNING, "ledger.task.bad_state"
    self._from_bound(task_id, KIND_ANALYSIS)
    assert self.tasks[task_id].matched == self.tasks[task_id].providers, "ledger.commitment.pending"
    assert commitment != empty(bytes32), "ledger.commitment.empty"
    self.tasks[task_id].model_commitment = commitment
    self.tasks[task_id].metrics_digest = metrics_digest
    log ModelCommitted(
        task_id=task_id, kind=KIND_ANALYSIS, component=msg.sender, commitment=commitment,
        metrics_digest=metrics_digest,
    )
    self._transition(task_id, S_TRAINED, empty(bytes32))


@external
def acknowledge_prediction(task_id: bytes32, evidence: bytes32, component: address):
    assert self._state(task_id) == S_TRAINED, "ledger.task.bad_state"
    self._from_bound(task_id, KIND_ANALYSIS)
    record: bytes32 = self._record(evidence, component)
    a: Attestation = self._attestation(task_id, record, KIND_PREDICTION)
    assert self.tasks[task_id].prediction == empty(address), "ledger.attestation.already_acknowledged"
    assert self.measurements[self._measurement_id(KIND_PREDICTION, a.tee, a.measurement)].status != M_REVOKED, "ledger.measurement.revoked"
    self.attestations[task_id][record].acks = 1
    self.tasks[task_id].prediction = a.component
    self.tasks[task_id].prediction_evidence = evidence
    log AttestationAcknowledged(
        task_id=task_id, org=empty(bytes32), kind=KIND_PREDICTION, evidence=evidence, acks=1,
        required=1,
    )
    log ComponentBound(task_id=task_id, kind=KIND_PREDICTION, component=a.component, evidence=evidence)


@external
def post_prediction_model_commitment(task_id: bytes32, commitment: bytes32):
    assert self._state(task_id) == S_TRAINED, "ledger.task.bad_state"
    self._from_bound(task_id, KIND_PREDICTION)
    log ModelCommitted(
        task_id=task_id, kind=KIND_PREDICTION, component=msg.sender, commitment=commitment,
        metrics_digest=empty(bytes32),
    )
    if commitment == self.tasks[task_id].model_commitment:
        self._transition(task_id, S_SERVING, empty(bytes32))
    else:
        self._transition(task_id, S_DISPUTED, empty(bytes32))


@external
def post_audit_root(task_id: bytes32, root: bytes32, count: uint256):
    assert self._state(task_id) == S_SERVING, "ledger.task.bad_state"
    assert msg.sender == self.tasks[task_id].prediction, "ledger.component.not_bound"
    assert root != empty(bytes32) and count > 0, "ledger.audit.empty"
    batch: uint256 = self.tasks[task_id].audit_batches
    self.tasks[task_id].audit_batches = batch + 1
    self.tasks[task_id].audited_predictions += count
    log AuditRootPosted(task_id=task_id, batch=batch, component=msg.sender, root=root, count=count)


@view
@external
def task_participants(task_id: bytes32) -> DynArray[bytes32, MAX_PARTIES]:
    return self.participants[task_id]


@view
@external
def task_measurements(task_id: bytes32) -> DynArray[Pin, MAX_PINS]:
    return self.pins[task_id]
