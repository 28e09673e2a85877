"""Chain backends: the in-process eth-tester chain and any EVM JSON-RPC node.

Both sign locally with eth-account, keep their own per-sender nonces, set explicit gas
limits and fees, and report every failure through ``map_chain_errors``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.base import JSONBaseProvider
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse, TxParams

from chronoseal.errors import ChainRevert, ChainUnavailable, LedgerError
from chronoseal.ledger._errors import map_chain_errors
from chronoseal.ledger._types import Receipt

PRIORITY_FEE_WEI = 1_000_000_000
RECEIPT_TIMEOUT_S = 60.0
LOGS_CHUNK_BLOCKS = 2_000
RESEND_AFTER_S = 6.0
TRANSIENT_WAIT_S = 10.0
CLIQUE_CONFIRMATIONS = 2
CONFIRMATIONS_ENV = "CHRONOSEAL_CONFIRMATIONS"
FAUCET_ENV = "CHRONOSEAL_FAUCET_KEY_FILE"


@dataclass(frozen=True)
class RawLog:
    """One log entry with where it happened and who sent the transaction."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    topics: list[bytes]
    data: bytes
    sender: str


class NonceManager:
    """Hands out nonces per sender without asking the node each time.

    The first nonce comes from the node (``pending``); any failed send forgets the sender
    so the next transaction re-reads the node's count instead of trusting a guess.
    """

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, address: str) -> int:
        with self._lock:
            if address not in self._next:
                with map_chain_errors("eth_getTransactionCount"):
                    self._next[address] = self._w3.eth.get_transaction_count(
                        Web3.to_checksum_address(address), "pending"
                    )
            nonce = self._next[address]
            self._next[address] = nonce + 1
            return nonce

    def forget(self, address: str | None = None) -> None:
        with self._lock:
            if address is None:
                self._next.clear()
            else:
                self._next.pop(address, None)


@runtime_checkable
class ChainBackend(Protocol):
    """What the ledger client needs from a chain; ``EmbeddedChain`` and ``JsonRpcChain``."""

    kind: str
    confirmations: int
    evm_version: str | None  # the contract build to deploy; None: the source's own target

    @property
    def w3(self) -> Web3: ...

    @property
    def chain_id(self) -> int: ...

    def transact(
        self, account: LocalAccount, tx: TxParams, *, gas: int, function: str
    ) -> Receipt: ...

    def logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]: ...

    def block_number(self) -> int: ...

    def fund(self, address: str, wei: int) -> None: ...

    def snapshot(self) -> str: ...

    def revert(self, snapshot_id: str) -> None: ...

    def advance_time(self, seconds: int) -> None: ...

    def close(self) -> None: ...


class _Web3Chain:
    """Signing, fees, nonces and receipt checking shared by both backends."""

    kind = "abstract"
    confirmations = 0  # blocks on top before a transaction or an event counts
    evm_version: str | None = None

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._nonces = NonceManager(w3)
        self._chain_id: int | None = None
        self._eip1559: bool | None = None
        self._send_lock = threading.Lock()
        self._senders: dict[str, str] = {}

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with map_chain_errors("eth_chainId"):
                self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    def block_number(self) -> int:
        with map_chain_errors("eth_blockNumber"):
            return int(self._w3.eth.block_number)

    def _fee_fields(self) -> dict[str, int]:
        with map_chain_errors("eth_getBlockByNumber"):
            latest = self._w3.eth.get_block("latest")
        base_fee = latest.get("baseFeePerGas")
        if self._eip1559 is None:
            self._eip1559 = base_fee is not None
        if self._eip1559 and base_fee is not None:
            return {
                "maxFeePerGas": 2 * int(base_fee) + PRIORITY_FEE_WEI,
                "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            }
        with map_chain_errors("eth_gasPrice"):
            return {"gasPrice": int(self._w3.eth.gas_price)}

    def transact(self, account: LocalAccount, tx: TxParams, *, gas: int, function: str) -> Receipt:
        """Sign and send ``tx`` from ``account``; return its receipt or raise ``ChainRevert``."""
        fields: dict[str, Any] = dict(tx)
        fields.update(self._fee_fields())
        fields.update(
            {
                "chainId": self.chain_id,
                "gas": gas,
                "from": account.address,
                "value": tx.get("value", 0),
            }
        )
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while True:
            with self._send_lock:
                fields["nonce"] = self._nonces.reserve(account.address)
                signed = account.sign_transaction(fields)
                try:
                    with map_chain_errors(function):
                        tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
                    break
                except ChainRevert:
                    self._nonces.forget(account.address)
                    raise
                except LedgerError as exc:
                    self._nonces.forget(account.address)
                    if not _nonce_taken(exc) or time.monotonic() > deadline:
                        raise
            # Another process with this key (the runner and a party agent) sent a transaction
            # with this nonce that the node read from did not count yet: it lags the node
            # that took it. Re-read the count once that node has caught up.
            time.sleep(0.5)
        hex_hash = HexBytes(tx_hash).to_0x_hex()
        self._senders[hex_hash] = str(account.address)
        receipt = self._settled_receipt(bytes(signed.raw_transaction), hex_hash, function)
        if receipt["status"] != 1:
            raise self._replay_failure(fields, int(receipt["blockNumber"]), function, hex_hash)
        created = receipt.get("contractAddress")
        return Receipt(
            hex_hash,
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
            str(created) if created else None,
        )

    def _receipt(self, tx_hash: str, function: str) -> Any:
        with map_chain_errors(function, tx_hash):
            try:
                return self._w3.eth.get_transaction_receipt(cast(HexBytes, tx_hash))
            except TransactionNotFound:
                return None

    def _settled_receipt(self, raw: bytes, tx_hash: str, function: str) -> Any:
        """The receipt once the transaction is ``confirmations`` blocks deep.

        A transaction that has no receipt for a while (the node that took it died before
        passing it on, or a reorganisation dropped its block) is sent again: the same
        signed bytes, so it can be mined at most once. Node outages inside the time limit
        are waited out; only a chain that stays unreachable raises ``ChainUnavailable``.
        """
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        last_send = time.monotonic()
        poll = 0.05 if self.confirmations == 0 else 0.2
        while True:
            try:
                receipt = self._receipt(tx_hash, function)
                if receipt is not None:
                    if self.confirmations == 0:
                        return receipt
                    mined = int(receipt["blockNumber"])
                    if self.block_number() >= mined + self.confirmations:
                        again = self._receipt(tx_hash, function)
                        if again is not None and again["blockHash"] == receipt["blockHash"]:
                            return again
                        last_send = 0.0  # dropped by a reorganisation: send it again
                elif time.monotonic() - last_send > RESEND_AFTER_S:
                    last_send = time.monotonic()
                    self._resend(raw, function, tx_hash)
            except ChainRevert:
                raise
            except LedgerError:  # unreachable, or a node whose receipt index lags its head
                if time.monotonic() > deadline:
                    raise
                # or whose index still names the block a reorganisation dropped (`value for
                # 0x... not found in DB` on every node): the transaction may be lost with it
                if time.monotonic() - last_send > RESEND_AFTER_S:
                    last_send = time.monotonic()
                    self._resend(raw, function, tx_hash)
            if time.monotonic() > deadline:
                raise ChainUnavailable(
                    f"{function}: transaction {tx_hash} was not mined and "
                    f"{self.confirmations} blocks deep within {RECEIPT_TIMEOUT_S:.0f} s",
                    context={"function": function, "tx_hash": tx_hash},
                )
            time.sleep(poll)

    def _resend(self, raw: bytes, function: str, tx_hash: str) -> None:
        """Offer the signed transaction again, to every node this client knows: a node
        that once took it may refuse it as known although its pool has lost it."""
        for w3 in self._broadcast_targets():
            try:
                with map_chain_errors(function, tx_hash):
                    w3.eth.send_raw_transaction(raw)
            except ChainRevert:
                raise
            except LedgerError:
                pass  # down, "already known" or "nonce too low" (mined): the others decide

    def _broadcast_targets(self) -> list[Web3]:
        return [self._w3]

    def _replay_failure(
        self, fields: dict[str, Any], block: int, function: str, tx_hash: str
    ) -> ChainRevert:
        """Recover a mined failure's reason by re-running the call on the parent block."""
        call: TxParams = cast(
            TxParams,
            {k: fields[k] for k in ("from", "to", "data", "value", "gas") if k in fields},
        )
        try:
            with map_chain_errors(function, tx_hash):
                self._w3.eth.call(call, block_identifier=max(block - 1, 0))
        except ChainRevert as revert:
            return revert
        except LedgerError as failure:  # some nodes report out-of-gas as a plain RPC error
            return ChainRevert(
                f"transaction failed on chain (status 0); replay: {failure.message}",
                function=function,
                tx_hash=tx_hash,
            )
        return ChainRevert(
            f"transaction failed on chain (status 0) but the replay succeeded; "
            f"out of gas at limit {fields.get('gas')}?",
            function=function,
            tx_hash=tx_hash,
        )

    def close(self) -> None:
        """Nothing to release by default."""


def _raw_log(log: Any, block_hash: str, sender: str) -> RawLog:
    return RawLog(
        block_number=int(log["blockNumber"]),
        block_hash=block_hash,
        tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
        log_index=int(log["logIndex"]),
        address=str(log["address"]),
        topics=[bytes(HexBytes(t)) for t in log["topics"]],
        data=bytes(HexBytes(log["data"])),
        sender=Web3.to_checksum_address(sender),
    )


class _SerialProvider(EthereumTesterProvider):
    """eth-tester with one request at a time: py-evm's chain is not thread-safe, and the
    demo's agents (one thread each) poll and transact on it at once."""

    def __init__(self, tester: EthereumTester, lock: threading.RLock) -> None:
        super().__init__(tester)
        self._lock = lock

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


class EmbeddedChain(_Web3Chain):
    """An in-process chain (eth-tester + py-evm): the default for the demo and tests.

    Every transaction is mined in its own block at once. Funding comes from eth-tester's
    pre-funded accounts. Safe to share between threads: every request, log read and
    dev helper holds one lock.
    """

    kind = "embedded"

    def __init__(self) -> None:
        self._tester = EthereumTester(PyEVMBackend())
        self._lock = threading.RLock()
        super().__init__(Web3(_SerialProvider(self._tester, self._lock)))
        with self._lock:
            self._funder = str(self._tester.get_accounts()[0])

    def logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        """Read receipts straight from py-evm: ten times faster than through web3 here.

        eth-tester's ``get_logs`` scans every block in Python and its receipts recover
        each sender's signature, so both are slow over hundreds of blocks.
        """
        with self._lock:
            return self._logs(address, from_block, to_block)

    def _logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        chain = self._tester.backend.chain
        wanted = bytes(HexBytes(address))
        out: list[RawLog] = []
        for number in range(from_block, to_block + 1):
            block = chain.get_canonical_block_by_number(number)
            block_hash = HexBytes(block.hash).to_0x_hex()
            log_index = 0
            for tx, receipt in zip(
                block.transactions, block.get_receipts(chain.chaindb), strict=True
            ):
                tx_hash = HexBytes(tx.hash).to_0x_hex()
                for log in receipt.logs:
                    if bytes(log.address) == wanted:
                        out.append(
                            RawLog(
                                block_number=number,
                                block_hash=block_hash,
                                tx_hash=tx_hash,
                                log_index=log_index,
                                address=Web3.to_checksum_address(log.address),
                                topics=[int(t).to_bytes(32, "big") for t in log.topics],
                                data=bytes(log.data),
                                sender=self._sender_of(tx_hash, tx),
                            )
                        )
                    log_index += 1
        return out

    def _sender_of(self, tx_hash: str, tx: Any) -> str:
        """The sender this process signed for, else py-evm's (slow) signature recovery."""
        known = self._senders.get(tx_hash)
        return known if known is not None else Web3.to_checksum_address(tx.sender)

    def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` from eth-tester's first pre-funded account (dev helper)."""
        with self._lock, map_chain_errors("fund"):
            self._tester.send_transaction(
                {
                    "from": self._funder,
                    "to": Web3.to_checksum_address(address),
                    "value": wei,
                    "gas": 21_000,
                }
            )

    def snapshot(self) -> str:
        with self._lock:
            return str(self._tester.take_snapshot())

    def revert(self, snapshot_id: str) -> None:
        with self._lock:
            self._tester.revert_to_snapshot(int(snapshot_id))
            self._nonces.forget()

    def advance_time(self, seconds: int) -> None:
        """Mine one block ``seconds`` after the latest one (for deadline tests and demos)."""
        with self._lock:
            latest = self._tester.get_block_by_number("latest")
            self._tester.time_travel(int(latest["timestamp"]) + seconds)


class FailoverProvider(JSONBaseProvider):
    """JSON-RPC over the first of several nodes of one chain that answers.

    The first URL is the caller's own node; the others are only used while it cannot be
    reached, and the provider stays on whichever node answered last.
    """

    def __init__(self, urls: list[str], timeout_s: float) -> None:
        super().__init__()
        self.urls = urls
        self._providers = [HTTPProvider(u, request_kwargs={"timeout": timeout_s}) for u in urls]
        self._current = 0
        self._lock = threading.Lock()

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        failure: Exception | None = None
        start = self._current
        deadline = time.monotonic() + TRANSIENT_WAIT_S
        while True:
            response: RPCResponse | None = None
            for step in range(len(self._providers)):
                index = (start + step) % len(self._providers)
                try:
                    response = self._providers[index].make_request(method, params)
                except OSError as exc:  # requests' connection errors and timeouts
                    failure = exc
                    continue
                if _transient(response) and time.monotonic() < deadline:
                    continue  # this node has the block but not its state yet: ask another
                with self._lock:
                    self._current = index
                return response
            if response is None and failure is not None:
                raise failure
            time.sleep(0.2)  # every node answered "not yet": wait for their execution

    def is_connected(self, show_traceback: bool = False) -> bool:
        return any(p.is_connected(show_traceback) for p in self._providers)


# Answers of a node that has imported the newest block but not executed it yet (the
# EthereumJS client executes received blocks asynchronously): the same call succeeds a
# moment later or on another node.
_TRANSIENT_ERRORS = ("State trie does not contain state root", "not found in DB")


# A send refused because the nonce is used already (mined, or in the node's pool).
_NONCE_TAKEN = ("nonce too low", "replacement gas too low", "replacement transaction underpriced")


def _nonce_taken(exc: LedgerError) -> bool:
    message = exc.message.lower()
    return any(m in message for m in _NONCE_TAKEN)


def _transient(response: Any) -> bool:
    error = response.get("error") if isinstance(response, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    return any(m in message for m in _TRANSIENT_ERRORS)


def _detect_confirmations(w3: Web3) -> int:
    """Clique's genesis extra-data lists the signers (32 + 20n + 65 bytes): wait for
    ``CLIQUE_CONFIRMATIONS`` blocks there; instant-seal dev nodes (anvil) need none."""
    explicit = os.environ.get(CONFIRMATIONS_ENV)
    if explicit:
        return int(explicit)
    with map_chain_errors("eth_getBlockByNumber"):
        genesis = w3.eth.get_block(0)
    return CLIQUE_CONFIRMATIONS if _is_clique(genesis) else 0


def _is_clique(genesis: Any) -> bool:
    extra = bytes(HexBytes(genesis.get("proofOfAuthorityData", genesis.get("extraData", b""))))
    return len(extra) >= 32 + 20 + 65


class JsonRpcChain(_Web3Chain):
    """Any EVM node over HTTP JSON-RPC: anvil locally, the members' validators, Besu/Quorum.

    ``url`` may list several nodes of the same chain, comma-separated, own node first:
    the client moves to the next one while a node cannot be reached. ``confirmations``
    (default: 2 on a Clique chain, 0 on instant-seal nodes, or ``CHRONOSEAL_CONFIRMATIONS``)
    is how many blocks must follow a transaction or an event before it counts.
    """

    kind = "json-rpc"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        confirmations: int | None = None,
        faucet_key_file: Path | None = None,
    ) -> None:
        urls = [u.strip() for u in url.split(",") if u.strip()]
        if not urls:
            raise ChainUnavailable("no JSON-RPC URL given")
        self.provider = FailoverProvider(urls, timeout_s)
        w3 = Web3(self.provider)
        # proof-of-authority headers carry the signers and seals in a longer extra-data
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        super().__init__(w3)
        self.url = urls[0]
        self.urls = urls
        try:
            _ = self.chain_id
            self.confirmations = (
                _detect_confirmations(self._w3) if confirmations is None else confirmations
            )
            with map_chain_errors("eth_getBlockByNumber"):
                # the members' Clique validators run London (see _build.EVM_VARIANTS)
                self.evm_version = "london" if _is_clique(self._w3.eth.get_block(0)) else None
        except LedgerError as exc:
            raise ChainUnavailable(
                f"no EVM JSON-RPC node answers at {', '.join(urls)}: {exc.message}"
            ) from exc
        faucet = faucet_key_file or (
            Path(os.environ[FAUCET_ENV]) if os.environ.get(FAUCET_ENV) else None
        )
        self._faucet = (
            account_from_key(faucet.read_text(encoding="utf-8").strip()) if faucet else None
        )

    def _broadcast_targets(self) -> list[Web3]:
        if len(self.urls) == 1:
            return [self._w3]
        return [Web3(HTTPProvider(u, request_kwargs={"timeout": 5.0})) for u in self.urls]

    def logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        """Use ``eth_getLogs`` (indexed on real nodes), then each block's senders.

        Ranges are split into chunks because many nodes cap the blocks one call may span.
        A node that imported a block but has not executed it yet has no receipts for it,
        and its ``eth_getLogs`` silently leaves that block out (EthereumJS): the state at the
        chunk's last block is asked for first, which such a node refuses as not yet there
        (the provider waits or asks another node). Senders come from the block's own
        transactions, not from the transaction index, which a reorganisation may have left
        naming another block.
        """
        target = Web3.to_checksum_address(address)
        senders: dict[str, str] = {}
        out: list[RawLog] = []
        with map_chain_errors("eth_getLogs"):
            for start in range(from_block, to_block + 1, LOGS_CHUNK_BLOCKS):
                end = min(start + LOGS_CHUNK_BLOCKS - 1, to_block)
                if self.confirmations > 0:  # the members' chain: execution lags import
                    self._w3.eth.get_transaction_count(target, block_identifier=end)
                entries = self._w3.eth.get_logs(
                    {"address": target, "fromBlock": start, "toBlock": end}
                )
                for log in entries:
                    tx_hash = HexBytes(log["transactionHash"]).to_0x_hex()
                    block_hash = HexBytes(log["blockHash"]).to_0x_hex()
                    if tx_hash not in senders:
                        block = self._w3.eth.get_block(
                            cast(HexBytes, block_hash), full_transactions=True
                        )
                        for tx in cast(list[Any], block["transactions"]):
                            senders[HexBytes(tx["hash"]).to_0x_hex()] = str(tx["from"])
                    out.append(_raw_log(log, block_hash, senders[tx_hash]))
        return out

    def _rpc(self, method: str, params: list[Any]) -> Any:
        with map_chain_errors(method):
            response = self._w3.provider.make_request(cast(Any, method), params)
        if "error" in response:
            raise LedgerError(f"{method} failed on {self.url}: {response['error']}")
        return response.get("result")

    def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` from the dev faucet (``CHRONOSEAL_FAUCET_KEY_FILE``, written by
        scripts/consortium-chain), else add it with ``anvil_setBalance`` (anvil, hardhat)."""
        target = Web3.to_checksum_address(address)
        if self._faucet is not None:
            self.transact(
                self._faucet, cast(TxParams, {"to": target, "value": wei}), gas=21_000,
                function="fund",
            )  # fmt: skip
            return
        with map_chain_errors("eth_getBalance"):
            balance = int(self._w3.eth.get_balance(target))
        self._rpc("anvil_setBalance", [target, hex(balance + wei)])

    def snapshot(self) -> str:
        return str(self._rpc("evm_snapshot", []))

    def revert(self, snapshot_id: str) -> None:
        if self._rpc("evm_revert", [snapshot_id]) is not True:
            raise LedgerError(f"evm_revert({snapshot_id}) was refused by {self.url}")
        self._nonces.forget()

    def advance_time(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", [seconds])
        self._rpc("evm_mine", [])


def account_from_key(private_key: str | bytes) -> LocalAccount:
    """Wrap a private key without ever printing it (LocalAccount's repr hides the key)."""
    return cast(LocalAccount, Account.from_key(private_key))
