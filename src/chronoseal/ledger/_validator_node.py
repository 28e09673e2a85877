"""One member's validator in its own deployment: ``chronoseal chain validator``.

The pod runs the same client, with the same gossip patch and the same command line, as
``ValidatorNetwork`` runs on loopback (``client_command``, ``client_env``); only the
genesis, the keys and the peers come from the deployment instead of a local directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from ._validators import (
    ValidatorError,
    client_command,
    client_env,
    clique_signers,
    find_ethereumjs,
    node_id_of,
    seed_node_key,
    write_gossip_patch,
)

#: As the client reads ``--unlock`` files: 64 hex digits, no ``0x`` (line breaks dropped).
_KEY_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_PEER = re.compile(r"^[0-9a-fA-F]{128}@[A-Za-z0-9.-]+:[0-9]{1,5}$")
PATCH_FILE = "gossip.mjs"


@dataclass(frozen=True)
class ValidatorKeys:
    """A fresh validator identity: the signer's address and the node id (both public)."""

    signer: str
    node_id: str


def _read_key(path: Path, what: str, error_id: str) -> str:
    """A 32-byte hex key from a file (a Secret's mount); the key itself is never in a message."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidatorError(
            f"cannot read the {what} key file {path}: {exc}", id=error_id
        ) from None
    if not _KEY_HEX.fullmatch(text):
        raise ValidatorError(
            f"{path} is not a {what} key (64 hex digits without 0x, as `chronoseal chain "
            "validator-key` writes)",
            id=error_id,
        )
    return text.lower()


def validator_node_command(
    *,
    genesis: Path,
    data_dir: Path,
    signer_key_file: Path,
    node_key_file: Path,
    static_peers: list[str],
    p2p_port: int,
    rpc_addr: str,
    rpc_port: int,
    ext_ip: str,
    log_level: str = "info",
    binary: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Prepare ``data_dir`` (the node key seeded where the client looks, the gossip patch)
    and return the client's command line and the environment the patch reads. Refuses a
    signer key the genesis does not list: that node could never seal a block."""
    found = binary or find_ethereumjs()
    try:
        signers = clique_signers(json.loads(genesis.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ValidatorError(
            f"cannot read the genesis {genesis}: {exc}", id="ledger.validators.genesis"
        ) from None
    signer = Account.from_key(_read_key(signer_key_file, "signer", "ledger.validators.signer"))
    if signer.address.lower() not in signers:
        raise ValidatorError(
            f"the signer key in {signer_key_file} is {signer.address}, which the genesis does "
            f"not list among its {len(signers)} signers: mount this member's own signer key, "
            "or render the genesis with its address",
            id="ledger.validators.signer",
        )
    for peer in static_peers:
        if not _PEER.fullmatch(peer):
            raise ValidatorError(
                f"static peer {peer!r} is not NODE_ID@HOST:PORT (128 hex digits of node id)",
                id="ledger.validators.peer_invalid",
            )
    node_key = _read_key(node_key_file, "node", "ledger.validators.node_key")
    if found is None or not os.access(found, os.X_OK):
        raise ValidatorError(
            f"the EthereumJS client is not installed{f' at {found}' if found else ''}: the "
            "image needs Node.js and @ethereumjs/client 0.10.5 (scripts/ethereumjs), with "
            "CHRONOSEAL_ETHEREUMJS naming its node_modules/.bin/ethereumjs",
            id="ledger.validators.client_missing",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    # the client names its network (and its data subdirectory) after the genesis file
    network = genesis.name.split(".")[0]
    seed_node_key(found, data_dir / network / "config", node_key)
    patch = data_dir / PATCH_FILE
    write_gossip_patch(found, patch)
    command = client_command(
        found,
        patch,
        genesis=genesis,
        data_dir=data_dir,
        p2p_port=p2p_port,
        ext_ip=ext_ip,
        rpc_addr=rpc_addr,
        rpc_port=rpc_port,
        signer_key_file=signer_key_file,
        log_level=log_level,
    )
    return command, client_env(len(signers), static_peers)


def new_validator_keys(directory: Path) -> ValidatorKeys:
    """Write a fresh signer key and node key (``signer.key``, ``node.key``, owner-only) into
    ``directory``; refuses to overwrite either."""
    keys = {"signer.key": secrets.token_bytes(32), "node.key": secrets.token_bytes(32)}
    directory.mkdir(parents=True, exist_ok=True)
    for name in keys:
        if (directory / name).exists():
            raise ValidatorError(
                f"{directory / name} exists: a validator key is never overwritten (move it "
                "away first)",
                id="ledger.validators.key_exists",
            )
    for name, key in keys.items():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex())
    signer = Account.from_key(keys["signer.key"]).address
    return ValidatorKeys(signer=signer, node_id=node_id_of(keys["node.key"].hex()))
