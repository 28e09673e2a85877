"""Chain backends: the in-process eth-tester chain and any EVM JSON-RPC node.

Both sign locally with eth-account, keep their own per-sender nonces, set explicit gas
limits and fees, and report every failure through ``map_chain_errors``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from hexbytes import HexBytes
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse, TxParams

from chronoseal.errors import ChainRevert, ChainUnavailable, LedgerError
from chronoseal.ledger._errors import map_chain_errors
from chronoseal.ledger._types import Receipt

PRIORITY_FEE_WEI = 1_000_000_000
RECEIPT_TIMEOUT_S = 60.0
LOGS_CHUNK_BLOCKS = 2_000


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
        with self._send_lock:
            fields["nonce"] = self._nonces.reserve(account.address)
            signed = account.sign_transaction(fields)
            try:
                with map_chain_errors(function):
                    tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                self._nonces.forget(account.address)
                raise
        hex_hash = HexBytes(tx_hash).to_0x_hex()
        self._senders[hex_hash] = str(account.address)
        with map_chain_errors(function, hex_hash):
            receipt = self._w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.05
            )
        if receipt["status"] != 1:
            raise self._replay_failure(fields, int(receipt["blockNumber"]), function, hex_hash)
        return Receipt(hex_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]))

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


class JsonRpcChain(_Web3Chain):
    """Any EVM node over HTTP JSON-RPC: anvil locally, Besu/Quorum in production."""

    kind = "json-rpc"

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        super().__init__(Web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s})))
        self.url = url
        try:
            _ = self.chain_id
        except LedgerError as exc:
            raise ChainUnavailable(f"no EVM JSON-RPC node answers at {url}: {exc.message}") from exc

    def logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        """Use ``eth_getLogs`` (indexed on real nodes), then one receipt per transaction.

        Ranges are split into chunks because many nodes cap the blocks one call may span.
        """
        target = Web3.to_checksum_address(address)
        senders: dict[str, str] = {}
        out: list[RawLog] = []
        with map_chain_errors("eth_getLogs"):
            for start in range(from_block, to_block + 1, LOGS_CHUNK_BLOCKS):
                end = min(start + LOGS_CHUNK_BLOCKS - 1, to_block)
                entries = self._w3.eth.get_logs(
                    {"address": target, "fromBlock": start, "toBlock": end}
                )
                for log in entries:
                    tx_hash = HexBytes(log["transactionHash"]).to_0x_hex()
                    if tx_hash not in senders:
                        receipt = self._w3.eth.get_transaction_receipt(cast(HexBytes, tx_hash))
                        senders[tx_hash] = str(receipt["from"])
                    block_hash = HexBytes(log["blockHash"]).to_0x_hex()
                    out.append(_raw_log(log, block_hash, senders[tx_hash]))
        return out

    def _rpc(self, method: str, params: list[Any]) -> Any:
        with map_chain_errors(method):
            response = self._w3.provider.make_request(cast(Any, method), params)
        if "error" in response:
            raise LedgerError(f"{method} failed on {self.url}: {response['error']}")
        return response.get("result")

    def fund(self, address: str, wei: int) -> None:
        """Add ``wei`` with ``anvil_setBalance`` (dev helper; anvil and hardhat only)."""
        target = Web3.to_checksum_address(address)
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
