"""Map every way web3.py and eth-tester report a failure onto chronoseal's ledger errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eth_abi.abi import decode as abi_decode
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3RPCError,
)

from chronoseal.errors import ChainRevert, ChainUnavailable, ChronosealError, LedgerError

_ERROR_SELECTOR = "08c379a0"  # Error(string)
_REVERT_PREFIXES = ("execution reverted: ", "execution reverted:", "revert: ")


def revert_reason(message: str | None, data: object = None) -> str:
    """Extract the contract's revert string from an error message or ABI-encoded data."""
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str):
        hexdata = data.removeprefix("0x")
        if hexdata.startswith(_ERROR_SELECTOR):
            try:
                (reason,) = abi_decode(["string"], bytes.fromhex(hexdata[8:]))
                return str(reason)
            except ValueError:
                pass  # undecodable data: fall back to the message below
    text = (message or "").strip()
    for prefix in _REVERT_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    return text or "execution reverted"


@contextmanager
def map_chain_errors(function: str | None = None, tx_hash: str | None = None) -> Iterator[None]:
    """Turn eth-tester, web3 and transport failures into one chronoseal error each.

    ``TransactionFailed`` (eth-tester) and ``ContractLogicError`` (JSON-RPC nodes) become
    ``ChainRevert`` with the contract's reason; connection problems become
    ``ChainUnavailable``; other node errors become ``LedgerError``.
    """
    try:
        yield
    except ChronosealError:
        raise
    except TransactionFailed as exc:
        arg = exc.args[0] if exc.args else None
        reason = revert_reason(arg if isinstance(arg, str) else repr(arg))
        raise ChainRevert(reason, function=function, tx_hash=tx_hash) from exc
    except ContractLogicError as exc:
        reason = revert_reason(exc.message, exc.data)
        raise ChainRevert(reason, function=function, tx_hash=tx_hash) from exc
    except (OSError, ProviderConnectionError) as exc:  # requests' errors are OSErrors
        raise ChainUnavailable(f"the chain node cannot be reached: {exc}") from exc
    except TimeExhausted as exc:
        raise ChainUnavailable(f"the transaction was not mined in time: {exc}") from exc
    except Web3RPCError as exc:
        raise LedgerError(f"the chain node refused the request{_where(function)}: {exc}") from exc


def _where(function: str | None) -> str:
    return f" ({function})" if function else ""
