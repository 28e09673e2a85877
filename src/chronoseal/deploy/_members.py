"""The founding members' validator nodes as a deployment input: public values only.

Every member names its own validator in one shared file (``deploy render --validators F``):
its Clique signer's address, which goes into the genesis every node starts from, and its node
id, which the other validators need to dial it. The keys themselves stay with the member, in
a Secret the manifests only refer to. ``chronoseal chain validator-key`` makes both keys and
prints the two public values.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from web3 import Web3

from chronoseal.errors import DeployError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NODE_ID = re.compile(r"^[0-9a-fA-F]{128}$")
_KEYS = frozenset({"signer", "node_id"})
_TOP = frozenset({"chain_id", "period", "members"})
#: The chain id of ``scripts/consortium-chain`` (``ledger.CLIQUE_CHAIN_ID``), unless the file
#: names another.
DEFAULT_CHAIN_ID = 4242
DEFAULT_PERIOD = 2


@dataclass(frozen=True)
class MemberValidator:
    """One member's validator: the address of its signer key and its node's public key."""

    member: str
    signer: str
    node_id: str


@dataclass(frozen=True)
class ValidatorsInput:
    """The validators file: one entry per founding member, in the file's order, and the
    chain's id and block period."""

    members: Mapping[str, MemberValidator]
    chain_id: int = DEFAULT_CHAIN_ID
    period: int = DEFAULT_PERIOD


def _invalid(source: str, what: str) -> DeployError:
    return DeployError(f"{source}: {what}", id="deploy.validators.invalid")


def _integer(doc: Mapping[str, Any], key: str, default: int, low: int, high: int, src: str) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(src, f"{key} must be an integer from {low} to {high}, not {value!r}")
    return value


def check_signer(member: str, value: object, source: str) -> str:
    """A signer address as written (0x and 40 hex digits; mixed case only with a valid
    EIP-55 checksum, which catches a mistyped digit)."""
    text = value if isinstance(value, str) else ""
    mixed = text[2:] != text[2:].lower() and text[2:] != text[2:].upper()
    if not _ADDRESS.fullmatch(text) or (mixed and not Web3.is_checksum_address(text)):
        raise DeployError(
            f"{source}: member {member!r} gives signer {value!r}, which is not an address (0x "
            "and 40 hex digits; mixed case must carry its EIP-55 checksum): write the address "
            "`chronoseal chain validator-key` printed for its signer key",
            id="deploy.validators.signer_invalid",
            context={"member": member},
        )
    return text.lower()


def check_node_id(member: str, value: object, source: str) -> str:
    """A node id: the 64-byte uncompressed secp256k1 public key of the node key, on the curve."""
    text = value if isinstance(value, str) else ""
    ok = _NODE_ID.fullmatch(text) is not None
    if ok:
        try:
            point = b"\x04" + bytes.fromhex(text)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), point)
        except ValueError:
            ok = False
    if not ok:
        raise DeployError(
            f"{source}: member {member!r} gives node_id {value!r}, which is no node's public "
            "key (128 hex digits of a secp256k1 point): write the node id `chronoseal chain "
            "validator-key` printed for its node key",
            id="deploy.validators.node_id_invalid",
            context={"member": member},
        )
    return text.lower()


def parse_validators(text: str, source: str = "validators file") -> ValidatorsInput:
    """The validators file's text, checked; ``source`` names it in refusals."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _invalid(source, f"not TOML ({exc})") from None
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise _invalid(source, f"unknown keys {', '.join(unknown)} (allowed: {sorted(_TOP)})")
    members_doc = doc.get("members")
    if not isinstance(members_doc, dict) or not members_doc:
        raise _invalid(source, "no [members.<name>] table: one is needed per founding member")
    members: dict[str, MemberValidator] = {}
    seen: dict[str, str] = {}
    for name, entry in members_doc.items():
        if not isinstance(entry, dict):
            raise _invalid(source, f"[members.{name}] must be a table with signer and node_id")
        extra = sorted(set(entry) - _KEYS)
        if extra:
            raise _invalid(source, f"[members.{name}] has unknown keys {', '.join(extra)}")
        if "signer" not in entry:
            raise DeployError(
                f"{source}: member {name!r} gives no signer: every founding member's validator "
                "seals blocks with its own key, whose address the genesis must list",
                id="deploy.validators.member_missing",
                context={"member": name},
            )
        signer = check_signer(name, entry["signer"], source)
        node_id = check_node_id(name, entry.get("node_id"), source)
        for value, what in ((signer, "signer"), (node_id, "node_id")):
            if value in seen:
                raise _invalid(source, f"members {seen[value]!r} and {name!r} share one {what}")
            seen[value] = name
        members[name] = MemberValidator(name, signer, node_id)
    return ValidatorsInput(
        members=members,
        chain_id=_integer(doc, "chain_id", DEFAULT_CHAIN_ID, 1, 2**63 - 1, source),
        period=_integer(doc, "period", DEFAULT_PERIOD, 1, 60, source),
    )
