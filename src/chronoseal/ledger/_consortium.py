"""Typed facade over the Consortium contract: deploy, act as an org or component, read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams

from chronoseal.errors import LedgerError
from chronoseal.ledger._artifacts import ContractArtifact, load_artifact
from chronoseal.ledger._chain import ChainBackend, account_from_key
from chronoseal.ledger._errors import map_chain_errors
from chronoseal.ledger._types import (
    AttestationView,
    ChainComponent,
    ChainRole,
    ChainTee,
    MeasurementStatus,
    MeasurementView,
    Member,
    Pin,
    ProposalKind,
    ProposalView,
    Receipt,
    TaskState,
    TaskView,
)
from chronoseal.spec import Component, Tee

Bytes32Like = bytes | str
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

DEPLOY_GAS = 8_000_000
DEFAULT_GAS = 600_000
GAS = {
    "propose_task": 2_500_000,
    "propose_member": 800_000,
    "approve_proposal": 900_000,
    "propose_measurement": 800_000,
}

PROPOSAL_CREATED = bytes(
    Web3.keccak(text="ProposalCreated(uint256,uint8,bytes32,bytes32,string,address,bool,uint256)")
)

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
TASK_APPROVAL_TYPE = [
    {"name": "taskId", "type": "bytes32"},
    {"name": "org", "type": "bytes32"},
]
MEASUREMENT_APPROVAL_TYPE = [
    {"name": "kind", "type": "uint8"},
    {"name": "tee", "type": "uint8"},
    {"name": "measurement", "type": "bytes32"},
    {"name": "org", "type": "bytes32"},
]


def org_id(name: str) -> bytes:
    """An organisation's on-chain id: keccak256 of its UTF-8 name."""
    return bytes(Web3.keccak(text=name))


def attestation_record(evidence: Bytes32Like, component: str) -> bytes:
    """The key of an attestation record: its evidence hash *and* the address that posted it,
    so a record copied by someone else is another record (and binds nobody's gateways)."""
    return bytes(Web3.keccak(as_bytes32(evidence) + bytes.fromhex(component.removeprefix("0x"))))


def measurement_id(
    kind: ChainComponent | Component | int,
    tee: ChainTee | Tee | int,
    digest: Bytes32Like,
) -> bytes:
    """The registry key of a measurement, as the contract computes it."""
    return bytes(
        Web3.keccak(
            abi_encode(
                ["uint8", "uint8", "bytes32"],
                [int(ChainComponent.of(kind)), int(ChainTee.of(tee)), as_bytes32(digest)],
            )
        )
    )


def as_bytes32(value: Bytes32Like) -> bytes:
    """Accept 32 raw bytes or their 0x-hex form; anything else is a caller bug."""
    raw = bytes(HexBytes(value)) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def _opt_address(value: str) -> str | None:
    return None if int(value, 16) == 0 else Web3.to_checksum_address(value)


def _opt_b32(value: bytes) -> bytes | None:
    return None if bytes(value) == ZERO32 else bytes(value)


class Consortium:
    """A deployed Consortium contract on one chain."""

    def __init__(
        self,
        chain: ChainBackend,
        address: str,
        *,
        deploy_block: int = 0,
        artifact: ContractArtifact | None = None,
    ) -> None:
        self.chain = chain
        self.artifact = artifact or load_artifact()
        self.address = Web3.to_checksum_address(address)
        self.deploy_block = deploy_block
        self.contract: Contract = chain.w3.eth.contract(address=self.address, abi=self.artifact.abi)
        self._names: dict[bytes, str] = {}

    @classmethod
    def deploy(
        cls,
        chain: ChainBackend,
        deployer_key: str | bytes,
        founders: Sequence[tuple[str, str]],
        *,
        simulated_tee_allowed: bool = True,
    ) -> Consortium:
        """Deploy a new consortium whose founders are ``(org name, first key address)``."""
        artifact = load_artifact(evm_version=chain.evm_version)
        account = account_from_key(deployer_key)
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        names = [name for name, _ in founders]
        keys = [Web3.to_checksum_address(key) for _, key in founders]
        data = factory.constructor(names, keys, simulated_tee_allowed).data_in_transaction
        receipt = chain.transact(
            account, cast(TxParams, {"data": data}), gas=DEPLOY_GAS, function="deploy"
        )
        address = receipt.contract_address  # from the settled receipt: no second lookup
        if address is None:
            with map_chain_errors("deploy", receipt.tx_hash):
                address = chain.w3.eth.get_transaction_receipt(cast(HexBytes, receipt.tx_hash))[
                    "contractAddress"
                ]
        if address is None:
            raise LedgerError(f"deployment {receipt.tx_hash} created no contract")
        return cls(chain, str(address), deploy_block=receipt.block_number, artifact=artifact)

    @classmethod
    def at(cls, chain: ChainBackend, address: str, *, deploy_block: int = 0) -> Consortium:
        """Attach to an existing deployment; ``deploy_block`` bounds event scans from below."""
        with map_chain_errors("eth_getCode"):
            code = chain.w3.eth.get_code(Web3.to_checksum_address(address))
        if len(code) == 0:
            raise LedgerError(f"no contract at {address}", id="ledger.contract.missing")
        return cls(chain, address, deploy_block=deploy_block)

    # ---------------------------------------------------------------- sessions

    def as_org(self, name: str, private_key: str | bytes) -> OrgSession:
        """Act for organisation ``name`` with one of its registered keys."""
        return OrgSession(self, name, account_from_key(private_key))

    def as_component(self, private_key: str | bytes) -> ComponentSession:
        """Act as a TEE component (analysis or prediction runtime) with its own key."""
        return ComponentSession(self, account_from_key(private_key))

    def as_account(self, private_key: str | bytes) -> Session:
        """Act as any funded account (relaying signed approvals, aborting late tasks)."""
        return Session(self, account_from_key(private_key))

    # ---------------------------------------------------------------- reads

    def call(self, function: str, *args: Any) -> Any:
        """Call a view function, mapping reverts and transport errors."""
        with map_chain_errors(function):
            return self.contract.functions[function](*args).call()

    def org_name(self, org: bytes) -> str:
        """Resolve an org id to its registered name (cached; names never change)."""
        org = bytes(org)
        if org not in self._names:
            name = str(self.call("org_name", org))
            if not name:
                raise LedgerError(f"unknown org id 0x{org.hex()}", id="ledger.member.unknown")
            self._names[org] = name
        return self._names[org]

    def members(self) -> list[Member]:
        """Current members with their keys, in the contract's order."""
        out = []
        for org in self.call("member_list"):
            out.append(
                Member(
                    org_id=bytes(org),
                    name=self.org_name(org),
                    keys=[Web3.to_checksum_address(k) for k in self.call("org_keys", org)],
                )
            )
        return out

    def org_of_key(self, address: str) -> str | None:
        """The name of the member a key belongs to, or None."""
        org = bytes(self.call("key_org", Web3.to_checksum_address(address)))
        return None if org == ZERO32 else self.org_name(org)

    def simulated_tee_allowed(self) -> bool:
        return bool(self.call("simulated_tee_allowed"))

    def measurement_usable(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> bool:
        return bool(
            self.call(
                "measurement_usable",
                int(ChainComponent.of(kind)),
                int(ChainTee.of(tee)),
                as_bytes32(digest),
            )
        )

    def measurement(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> MeasurementView:
        digest32 = as_bytes32(digest)
        row = self.call("measurements", measurement_id(kind, tee, digest32))
        return MeasurementView(
            kind=ChainComponent.of(kind),
            tee=ChainTee.of(tee),
            digest=digest32,
            status=MeasurementStatus(row[3]),
            approvals=int(row[6]),
            required=int(row[5]),
            usable=self.measurement_usable(kind, tee, digest32),
        )

    def proposal(self, proposal_id: int) -> ProposalView:
        row = self.call("proposals", proposal_id)
        if row[0] == 0:
            raise LedgerError(f"no proposal {proposal_id}", id="ledger.proposal.unknown")
        return ProposalView(
            proposal_id=proposal_id,
            kind=ProposalKind(row[0]),
            subject=bytes(row[1]),
            name=str(row[2]),
            key=_opt_address(row[3]),
            flag=bool(row[4]),
            proposer=self.org_name(row[5]),
            required=int(row[6]),
            approvals=int(row[7]),
            executed=bool(row[8]),
        )

    def task_state(self, task_id: Bytes32Like) -> TaskState:
        return TaskState(self.call("tasks", as_bytes32(task_id))[0])

    def task(self, task_id: Bytes32Like) -> TaskView:
        """The task's full on-chain record; raises ``ledger.task.unknown`` if absent."""
        tid = as_bytes32(task_id)
        row = self.call("tasks", tid)
        if row[0] == 0:
            raise LedgerError(f"no task 0x{tid.hex()} on chain", id="ledger.task.unknown")
        parties = [bytes(p) for p in self.call("task_participants", tid)]
        names = [self.org_name(p) for p in parties]
        roles = {
            n: ChainRole(self.call("task_roles", tid, p))
            for n, p in zip(names, parties, strict=True)
        }
        approved = [
            n for n, p in zip(names, parties, strict=True) if self.call("task_approved", tid, p)
        ]
        pins = [
            Pin(ChainComponent(k), ChainTee(t), bytes(d))
            for k, t, d in self.call("task_measurements", tid)
        ]
        return TaskView(
            task_id=tid,
            state=TaskState(row[0]),
            proposer=self.org_name(row[1]),
            deadline=int(row[2]),
            required=int(row[3]),
            approvals=int(row[4]),
            providers=int(row[5]),
            acknowledgements=int(row[6]),
            matched_commitments=int(row[7]),
            analysis=_opt_address(row[8]),
            analysis_evidence=_opt_b32(row[9]),
            prediction=_opt_address(row[10]),
            prediction_evidence=_opt_b32(row[11]),
            model_commitment=_opt_b32(row[12]),
            metrics_digest=_opt_b32(row[13]),
            audit_batches=int(row[14]),
            audited_predictions=int(row[15]),
            participants=names,
            roles=roles,
            approved_by=approved,
            measurements=pins,
        )

    def attestation(
        self, task_id: Bytes32Like, evidence: Bytes32Like, component: str
    ) -> AttestationView | None:
        """The record ``component`` posted with this evidence hash, if it did."""
        row = self.call(
            "attestations", as_bytes32(task_id), attestation_record(evidence, component)
        )
        if row[0] == 0:
            return None
        return AttestationView(
            kind=ChainComponent(row[0]),
            tee=ChainTee(row[1]),
            measurement=bytes(row[2]),
            evidence=bytes(row[3]),
            tls_key=bytes(row[4]),
            component=Web3.to_checksum_address(row[5]),
            acks=int(row[6]),
        )

    def commitments(self, task_id: Bytes32Like, org_name: str) -> tuple[bytes | None, bytes | None]:
        """(gateway side, runtime side) data commitments for one party, None if not posted."""
        tid, org = as_bytes32(task_id), org_id(org_name)
        return (
            _opt_b32(self.call("gateway_commitments", tid, org)),
            _opt_b32(self.call("runtime_commitments", tid, org)),
        )

    def transaction_call(self, tx_hash: str) -> tuple[str, dict[str, Any]]:
        """The contract function and arguments a mined transaction called (from its input).

        Raises ``ledger.tx.not_consortium_call`` when the transaction did not call this
        contract directly (the history then cannot say who signed what).
        """
        with map_chain_errors("eth_getTransactionByHash", tx_hash):
            tx = self.chain.w3.eth.get_transaction(cast(HexBytes, tx_hash))
        to = tx.get("to")
        if to is None or Web3.to_checksum_address(str(to)) != self.address:
            raise LedgerError(
                f"transaction {tx_hash} did not call the consortium contract directly",
                id="ledger.tx.not_consortium_call",
            )
        try:
            function, args = self.contract.decode_function_input(bytes(tx["input"]))
        except ValueError as exc:
            raise LedgerError(
                f"transaction {tx_hash} does not decode as a consortium call: {exc}",
                id="ledger.tx.not_consortium_call",
            ) from exc
        return str(function.fn_name), dict(args)

    def task_approval_signer(
        self, task_id: Bytes32Like, org: Bytes32Like, v: int, r: bytes, s: bytes
    ) -> str | None:
        """Who signed an EIP-712 ``TaskApproval`` (None if the signature is not valid)."""
        message = {"taskId": as_bytes32(task_id), "org": as_bytes32(org)}
        return self._typed_signer("TaskApproval", TASK_APPROVAL_TYPE, message, v, r, s)

    def measurement_approval_signer(
        self,
        kind: int,
        tee: int,
        digest: Bytes32Like,
        org: Bytes32Like,
        v: int,
        r: bytes,
        s: bytes,
    ) -> str | None:
        """Who signed an EIP-712 ``MeasurementApproval`` (None if the signature is not valid)."""
        message = {
            "kind": int(ChainComponent.of(kind)),
            "tee": int(ChainTee.of(tee)),
            "measurement": as_bytes32(digest),
            "org": as_bytes32(org),
        }
        return self._typed_signer(
            "MeasurementApproval", MEASUREMENT_APPROVAL_TYPE, message, v, r, s
        )

    def _typed_signer(
        self,
        primary: str,
        fields: list[dict[str, str]],
        message: dict[str, Any],
        v: int,
        r: bytes,
        s: bytes,
    ) -> str | None:
        # the contract's own rules: v in {27, 28}, low s, a recoverable non-zero signer
        if v not in (27, 28) or int.from_bytes(s, "big") > SECP256K1_HALF_N:
            return None
        signable = encode_typed_data(
            full_message={
                "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, primary: fields},
                "primaryType": primary,
                "domain": self.eip712_domain(),
                "message": message,
            }
        )
        try:
            signer = Account.recover_message(signable, vrs=(v, r, s))
        except (ValueError, BadSignature):
            return None
        return None if int(signer, 16) == 0 else Web3.to_checksum_address(signer)

    def eip712_domain(self) -> dict[str, Any]:
        """The EIP-712 domain every relayed approval is signed under."""
        return {
            "name": "chronoseal",
            "version": "1",
            "chainId": self.chain.chain_id,
            "verifyingContract": self.address,
        }


class Session:
    """Any account acting on the consortium; the base of org and component sessions."""

    def __init__(self, consortium: Consortium, account: LocalAccount) -> None:
        self.consortium = consortium
        self._account = account

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self.address})"

    @property
    def address(self) -> str:
        return str(self._account.address)

    def _send(self, function: str, *args: Any, gas: int | None = None) -> Receipt:
        contract = self.consortium.contract
        data = contract.encode_abi(function, args=list(args))
        tx = cast(TxParams, {"to": contract.address, "data": data})
        return self.consortium.chain.transact(
            self._account, tx, gas=gas or GAS.get(function, DEFAULT_GAS), function=function
        )

    def relay_task_approval(self, task_id: Bytes32Like, org: str, signature: bytes) -> Receipt:
        """Submit another org's EIP-712 task approval; this account pays the gas."""
        v, r, s = _split_signature(signature)
        return self._send("approve_task_signed", as_bytes32(task_id), org_id(org), v, r, s)

    def relay_measurement_approval(
        self,
        kind: ChainComponent | Component,
        tee: ChainTee | Tee,
        digest: Bytes32Like,
        org: str,
        signature: bytes,
    ) -> Receipt:
        """Submit another org's EIP-712 measurement approval; this account pays the gas."""
        v, r, s = _split_signature(signature)
        return self._send(
            "approve_measurement_signed",
            int(ChainComponent.of(kind)),
            int(ChainTee.of(tee)),
            as_bytes32(digest),
            org_id(org),
            v,
            r,
            s,
        )

    def abort_task(self, task_id: Bytes32Like) -> Receipt:
        """Abort: any participant before the deadline, anyone after it."""
        return self._send("abort_task", as_bytes32(task_id))


class OrgSession(Session):
    """An organisation acting through one of its registered keys (and its gateways)."""

    def __init__(self, consortium: Consortium, name: str, account: LocalAccount) -> None:
        super().__init__(consortium, account)
        self.name = name
        self.org_id = org_id(name)

    # governance
    def propose_member(self, name: str, key: str) -> int:
        """Propose a new member; returns the proposal id (this org's approval included)."""
        receipt = self._send("propose_member", name, Web3.to_checksum_address(key))
        return self._proposal_id(receipt)

    def propose_member_removal(self, name: str) -> int:
        receipt = self._send("propose_member_removal", org_id(name))
        return self._proposal_id(receipt)

    def propose_simulated_tee_allowed(self, allowed: bool) -> int:
        receipt = self._send("propose_simulated_tee_allowed", allowed)
        return self._proposal_id(receipt)

    def _proposal_id(self, receipt: Receipt) -> int:
        """Read the id from this transaction's ``ProposalCreated`` log (not a racy counter)."""
        with map_chain_errors("eth_getTransactionReceipt", receipt.tx_hash):
            logs = self.consortium.chain.w3.eth.get_transaction_receipt(
                cast(HexBytes, receipt.tx_hash)
            )["logs"]
        for log in logs:
            topics = [bytes(HexBytes(t)) for t in log["topics"]]
            if str(log["address"]) == self.consortium.address and topics[0] == PROPOSAL_CREATED:
                return int.from_bytes(topics[1], "big")
        raise LedgerError(f"no ProposalCreated event in {receipt.tx_hash}")

    def approve_proposal(self, proposal_id: int) -> Receipt:
        return self._send("approve_proposal", proposal_id)

    def add_key(self, key: str) -> Receipt:
        return self._send("add_key", Web3.to_checksum_address(key))

    def remove_key(self, key: str) -> Receipt:
        return self._send("remove_key", Web3.to_checksum_address(key))

    # measurements
    def propose_measurement(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> Receipt:
        return self._send(
            "propose_measurement",
            int(ChainComponent.of(kind)),
            int(ChainTee.of(tee)),
            as_bytes32(digest),
        )

    def approve_measurement(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> Receipt:
        return self._send(
            "approve_measurement",
            int(ChainComponent.of(kind)),
            int(ChainTee.of(tee)),
            as_bytes32(digest),
        )

    def revoke_measurement(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> Receipt:
        return self._send(
            "revoke_measurement",
            int(ChainComponent.of(kind)),
            int(ChainTee.of(tee)),
            as_bytes32(digest),
        )

    def sign_measurement_approval(
        self, kind: ChainComponent | Component, tee: ChainTee | Tee, digest: Bytes32Like
    ) -> bytes:
        """EIP-712 ``MeasurementApproval`` signature that any funded account may relay."""
        message = {
            "kind": int(ChainComponent.of(kind)),
            "tee": int(ChainTee.of(tee)),
            "measurement": as_bytes32(digest),
            "org": self.org_id,
        }
        return self._sign_typed("MeasurementApproval", MEASUREMENT_APPROVAL_TYPE, message)

    # tasks
    def propose_task(
        self,
        task_id: Bytes32Like,
        participants: Sequence[tuple[str, ChainRole | int]],
        measurements: Sequence[tuple[ChainComponent | Component, ChainTee | Tee, Bytes32Like]],
        deadline: int,
    ) -> Receipt:
        """Propose a task; ``task_id`` is SHA-256 of the RFC 8785 canonical spec. Components
        and TEEs may be spec's or the chain's codes (converted here, at the ledger's edge)."""
        parties = [org_id(name) for name, _ in participants]
        roles = [int(role) for _, role in participants]
        pins = [
            (int(ChainComponent.of(k)), int(ChainTee.of(t)), as_bytes32(d))
            for k, t, d in measurements
        ]
        return self._send("propose_task", as_bytes32(task_id), parties, roles, pins, deadline)

    def approve_task(self, task_id: Bytes32Like) -> Receipt:
        return self._send("approve_task", as_bytes32(task_id))

    def sign_task_approval(self, task_id: Bytes32Like) -> bytes:
        """EIP-712 ``TaskApproval`` signature; lets an org approve without a funded account."""
        message = {"taskId": as_bytes32(task_id), "org": self.org_id}
        return self._sign_typed("TaskApproval", TASK_APPROVAL_TYPE, message)

    def _sign_typed(
        self, primary: str, fields: list[dict[str, str]], message: dict[str, Any]
    ) -> bytes:
        signable = encode_typed_data(
            full_message={
                "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, primary: fields},
                "primaryType": primary,
                "domain": self.consortium.eip712_domain(),
                "message": message,
            }
        )
        return bytes(self._account.sign_message(signable).signature)

    def acknowledge_attestation(
        self, task_id: Bytes32Like, evidence: Bytes32Like, component: str
    ) -> Receipt:
        """This data provider's gateway accepts the analysis runtime's attestation: the record
        ``component`` posted, which must be the address the runtime's evidence binds."""
        return self._send(
            "acknowledge_attestation",
            as_bytes32(task_id),
            as_bytes32(evidence),
            Web3.to_checksum_address(component),
        )

    def post_gateway_commitment(self, task_id: Bytes32Like, commitment: Bytes32Like) -> Receipt:
        """Commitment (salted Merkle root) of the batches this org's gateway sent."""
        return self._send("post_gateway_commitment", as_bytes32(task_id), as_bytes32(commitment))

    def retire_task(self, task_id: Bytes32Like) -> Receipt:
        return self._send("retire_task", as_bytes32(task_id))


class ComponentSession(Session):
    """A TEE component (analysis or prediction runtime) acting with its own key."""

    def post_attestation(
        self,
        task_id: Bytes32Like,
        kind: ChainComponent | Component,
        tee: ChainTee | Tee,
        measurement: Bytes32Like,
        evidence_hash: Bytes32Like,
        tls_key_fingerprint: Bytes32Like,
    ) -> Receipt:
        return self._send(
            "post_attestation",
            as_bytes32(task_id),
            int(ChainComponent.of(kind)),
            int(ChainTee.of(tee)),
            as_bytes32(measurement),
            as_bytes32(evidence_hash),
            as_bytes32(tls_key_fingerprint),
        )

    def post_runtime_commitment(
        self, task_id: Bytes32Like, party: str, commitment: Bytes32Like
    ) -> Receipt:
        """Commitment of what this analysis runtime received from ``party``."""
        return self._send(
            "post_runtime_commitment", as_bytes32(task_id), org_id(party), as_bytes32(commitment)
        )

    def post_model_commitment(
        self, task_id: Bytes32Like, commitment: Bytes32Like, metrics_digest: Bytes32Like
    ) -> Receipt:
        return self._send(
            "post_model_commitment",
            as_bytes32(task_id),
            as_bytes32(commitment),
            as_bytes32(metrics_digest),
        )

    def abort_as_component(self, task_id: Bytes32Like, reason: str) -> Receipt:
        """The bound component gives up on the task; ``reason`` (a refusal id) goes on chain."""
        return self._send("abort_as_component", as_bytes32(task_id), reason[:64])

    def acknowledge_prediction(
        self, task_id: Bytes32Like, evidence: Bytes32Like, component: str
    ) -> Receipt:
        """The bound analysis runtime accepts the prediction runtime it hands the model to."""
        return self._send(
            "acknowledge_prediction",
            as_bytes32(task_id),
            as_bytes32(evidence),
            Web3.to_checksum_address(component),
        )

    def post_prediction_model_commitment(
        self, task_id: Bytes32Like, commitment: Bytes32Like
    ) -> Receipt:
        """The prediction runtime's commitment of the model it received (equal -> Serving)."""
        return self._send(
            "post_prediction_model_commitment", as_bytes32(task_id), as_bytes32(commitment)
        )

    def post_audit_root(self, task_id: Bytes32Like, root: Bytes32Like, count: int) -> Receipt:
        """One batch of prediction audit records: Merkle root and number of predictions."""
        return self._send("post_audit_root", as_bytes32(task_id), as_bytes32(root), count)


def _split_signature(signature: bytes) -> tuple[int, bytes, bytes]:
    """65-byte r‖s‖v as produced by eth-account; the contract checks v and s itself."""
    if len(signature) != 65:
        raise LedgerError(
            f"an EIP-712 signature is 65 bytes, got {len(signature)}",
            id="ledger.signature.invalid",
        )
    return signature[64], signature[:32], signature[32:64]
