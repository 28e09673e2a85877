"""A Clique proof-of-authority network of real EthereumJS client nodes on loopback.

One validator per founding member: every member's signer address goes into the genesis
extra-data, each node seals with its own key, listens on its own RLPx and JSON-RPC port and
dials every other node. ``scripts/consortium-chain N DIR`` runs one in the foreground; the
fault tests drive the same class to kill, restart and starve nodes.

The client (``@ethereumjs/client`` 0.10) has two gaps this module works around, both with
the client's own mechanisms: it forgets its node key at every start (so enode ids would
change; the key is written into its config database before the first start), and a node
that misses one block announcement never asks its peers again until it reconnects (the
supervisor restarts a node that lags the others, and the restart re-syncs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys.datatypes import PrivateKey

from chronoseal.errors import LedgerError

ETHEREUMJS_ENV = "CHRONOSEAL_ETHEREUMJS"
CLIQUE_CHAIN_ID = 4242
GENESIS_NAME = "consortium"  # the client names its network after the genesis file
FAUCET_WEI = 10**27
VALIDATOR_WEI = 10**21
MAX_CODE_SIZE = 32_768  # bytes of runtime code a contract may have on the members' chain
_VANITY = b"\x00" * 32
_SEAL = b"\x00" * 65

Log = Callable[[str], None]


class ValidatorError(LedgerError):
    """The validator network could not be created or started."""

    default_id = "ledger.validators.error"


def find_ethereumjs() -> str | None:
    """The client from ``CHRONOSEAL_ETHEREUMJS`` or a checkout's ``.cache`` (scripts/ethereumjs)."""
    explicit = os.environ.get(ETHEREUMJS_ENV)
    if explicit:
        return explicit
    checkout = Path(__file__).resolve().parents[3]
    candidate = checkout / ".cache" / "ethereumjs" / "node_modules" / ".bin" / "ethereumjs"
    return str(candidate) if os.access(candidate, os.X_OK) else None


def clique_extra_data(signers: list[str]) -> str:
    """Genesis extra-data: 32 vanity bytes, the signers in ascending order, an empty seal."""
    ordered = sorted(bytes.fromhex(a.removeprefix("0x")) for a in signers)
    return "0x" + (_VANITY + b"".join(ordered) + _SEAL).hex()


def clique_genesis(
    signers: list[str], alloc: dict[str, int], *, period: int, chain_id: int
) -> dict[str, Any]:
    """A geth-format genesis with every fork through London active at block 0."""
    forks = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople"]
    forks += ["petersburg", "istanbul", "berlin", "london"]
    config: dict[str, Any] = {"chainId": chain_id, **{f"{f}Block": 0 for f in forks}}
    config["clique"] = {"period": period, "epoch": 30000}
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "extraData": clique_extra_data(signers),
        "gasLimit": hex(30_000_000),
        "difficulty": "0x1",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
        "alloc": {a.removeprefix("0x").lower(): {"balance": hex(w)} for a, w in alloc.items()},
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_secret(path: Path, text: str) -> None:
    """Write a key file readable by its owner only (the client reads plaintext key files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


_SEED_KEY_JS = """
import { Level } from 'level';
const [dir, hex] = process.argv.slice(1);
const db = new Level(dir);
await db.put('config:client_key', Uint8Array.from(Buffer.from(hex, 'hex')),
  { keyEncoding: 'utf8', valueEncoding: 'view' });
await db.close();
"""


# Loaded with ``node --import`` before the client: fixes on the client's own classes (no file of
# the client is changed; docs/ledger.md has the table of each behaviour, its effect and its fix),
# each explained where it is made. The first were gossip: the client hands a sealed block to
# floor(sqrt(peers)) peers and drops the others' hash announcements while it is not syncing, so in
# a small network most nodes miss most blocks; and it ignores a block that is not a child of its
# tip, so a node that sealed the losing side of a fork never reorganises. Here every peer gets
# every block (a send to a peer that died is skipped instead of aborting the sealer's own import),
# and a block whose parent is known is stored, the client's blockchain then keeps the heaviest
# chain (Clique: in-turn blocks weigh 2, others 1).
_GOSSIP_JS = """
import { FullSynchronizer } from '__FULLSYNC__';
import { Miner } from '__MINER__';
import { Event } from '__TYPES__';
import { BlockBuilder } from '__VM__';
import { EVM } from '__EVM__';
import { cliqueSigner, createSealedCliqueBlock } from '__BLOCK__';
import { Common, Hardfork } from '__COMMON__';
import { RlpxServer } from '__RLPX__';
import { FullEthereumService } from '__SERVICE__';
import { ReceiptsManager } from '__RECEIPT__';
import { CliqueConsensus } from '__BLOCKCHAIN__';
// A node more than one block behind drops every NewBlock (it cannot validate it) and syncs
// only from a peer whose total difficulty is above its own, read from the peer's handshake
// and never updated: after its first sync a restarted node's own difficulty passes every
// handshake value and it stops following the chain for good (it stayed at the height it
// had synced to while the others went on). Keep each peer's announced difficulty and head
// current from its NewBlock messages, so the client's own sync loop picks it up.
const handleEth = FullEthereumService.prototype.handleEth;
FullEthereumService.prototype.handleEth = async function (message, peer) {
  const status = peer?.eth?.status;
  if (message.name === 'NewBlock' && status !== undefined && status.td !== undefined) {
    const [block, raw] = message.data;
    const td = raw instanceof Uint8Array
      ? (raw.length > 0 ? BigInt('0x' + Buffer.from(raw).toString('hex')) : 0n)
      : BigInt(raw);
    if (td > status.td) {
      status.td = td;
      status.bestHash = block.hash();
      peer.eth.updatedBestHeader = block.header;
    }
  }
  return handleEth.call(this, message, peer);
};
// Static peers, as geth's and Besu's static-nodes: the client dials its bootnodes once, at
// start, after a discovery ping that fails while that peer is not up yet, and never redials
// a link that dropped. Peering was whatever the start-up order left (4 nodes: one hub linked
// to the three others, each of them to the hub only), and killing the hub cut the others
// apart. Keep a link to every other validator instead: each node dials the ones listed for
// it (the validators after it; the ones before dial it), again every 2 s while a link is down.
const staticPeers = (process.env.CHRONOSEAL_STATIC_PEERS ?? '').split(',').filter(Boolean)
  .map((entry) => {
    const [id, hostPort] = entry.split('@');
    const colon = hostPort.lastIndexOf(':');
    return {
      key: id,
      id: Uint8Array.from(Buffer.from(id, 'hex')),
      address: hostPort.slice(0, colon),
      tcpPort: Number(hostPort.slice(colon + 1)),
    };
  });
const startServer = RlpxServer.prototype.start;
RlpxServer.prototype.start = async function () {
  const started = await startServer.call(this);
  if (staticPeers.length > 0 && this._chronosealDial === undefined) {
    const dial = () => {
      if (!this.started || !this.rlpx) return;
      for (const peer of staticPeers) {
        if (this.rlpx._peers.has(peer.key)) continue;
        const { id, address, tcpPort } = peer;
        this.rlpx.connect({ id, address, tcpPort }).catch(() => {});  // down: next round
      }
    };
    this._chronosealDial = setInterval(dial, 2000);
    this._chronosealDial.unref();
    dial();
  }
  return started;
};
// A consortium chain parameter, as Quorum's `maxCodeSize` and Besu's `contractSizeLimit`:
// the consortium contract built for London is a little over EIP-170's 24 KiB.
const maxCodeSize = BigInt(process.env.CHRONOSEAL_CLIQUE_MAX_CODE_SIZE ?? '24576');
const param = Common.prototype.param;
Common.prototype.param = function (name) {
  return name === 'maxCodeSize' ? maxCodeSize : param.call(this, name);
};
// The client builds its EVMs without the `cliqueSigner` option, which the interpreter
// demands on a Clique chain before it runs any contract code (COINBASE is the block's
// signer there): every contract call fails, and a failed call inside block building
// leaves the state half-changed. Give every EVM the library's own signer recovery.
Object.defineProperty(EVM.prototype, '_optsCached', {
  configurable: true,
  get() { return this._chronosealOpts; },
  set(opts) {
    const missing = opts && opts.cliqueSigner === undefined;
    this._chronosealOpts = missing ? { ...opts, cliqueSigner } : opts;
  },
});
// The Clique miner builds each transaction's context block without extra-data, which the
// header refuses on a Clique chain: every transaction is skipped and no block carries one.
// Seal that throwaway header with the same key (runTx credits the fees to its signer, as
// every node does on the final block) and drop it again before the real seal.
const addTransaction = BlockBuilder.prototype.addTransaction;
BlockBuilder.prototype.addTransaction = async function (tx, opts) {
  const signer = this.blockOpts.cliqueSigner;
  if (signer === undefined || this.headerData.extraData !== undefined) {
    return addTransaction.call(this, tx, opts);
  }
  // the header addTransaction will build (gasUsed so far included), so the seal recovers
  const header = { ...this.headerData, gasUsed: this.gasUsed };
  const probe = createSealedCliqueBlock({ header }, signer, this.blockOpts);
  this.headerData.extraData = probe.header.extraData;
  try {
    return await addTransaction.call(this, tx, opts);
  } finally {
    delete this.headerData.extraData;
  }
};
// Receipts and their tx-hash index. The miner saves the receipts of the block it sealed
// before the block is stored, and saves them even when a block that arrived meanwhile
// interrupts it (the block is then thrown away): the index names a block the node never
// stores, and every receipt query for its transactions fails with `value for 0x... not
// found in DB` until they are mined again. Save receipts only for a stored block (the VM
// saves them when it executes the block, on the sealer as on every other node). Nor is a
// block a reorganisation dropped taken out of the index: the client removes its entries
// asynchronously, after the block that replaced it may have indexed the same transaction
// (the receipt then vanishes for good on that node); an entry naming a block off the
// canonical chain already reads as no receipt (eth_getTransactionReceipt checks).
const saveReceipts = ReceiptsManager.prototype.saveReceipts;
ReceiptsManager.prototype.saveReceipts = async function (block, receipts) {
  try {
    await this.chain.blockchain.dbManager.hashToNumber(block.hash());
  } catch {
    return;  // not stored (yet): the VM saves them if and when it runs the block
  }
  return saveReceipts.call(this, block, receipts);
};
const updateIndex = ReceiptsManager.prototype.updateIndex;
ReceiptsManager.prototype.updateIndex = async function (operation, type, value) {
  if (operation === 'delete' && type === 'txhash') {
    const canonical = await this.chain.blockchain.dbManager.numberToHash(value.header.number);
    if (canonical === undefined || !same(canonical, value.hash())) return;  // dropped
  }
  return updateIndex.call(this, operation, type, value);  // also txLookupLimit's pruning
};
// On a reorganisation the Clique snapshot of recent signers keeps the dropped block's signer
// (the library rolls back to the ancestor's child, inclusive, then adds the new blocks):
// that signer counts as having signed twice and may not seal when it should.
const cliqueNewBlock = CliqueConsensus.prototype.newBlock;
CliqueConsensus.prototype.newBlock = async function (block, commonAncestor, ancestorHeaders) {
  if (commonAncestor !== undefined) await this._cliqueDeleteSnapshots(commonAncestor.number);
  return cliqueNewBlock.call(this, block, commonAncestor, ancestorHeaders);
};
// Out-of-turn sealing with a deterministic back-off. The client lets every out-of-turn
// signer seal after a random 0..N*500 ms (EIP-225's suggestion); with a 1 s period on a
// loaded machine two of them often seal the same height before the in-turn block arrives:
// equal-difficulty siblings, reorganisations, dropped transactions. Clique lets any eligible
// signer seal once the period is over, so each takes its place instead: the k-th eligible
// signer after the in-turn one (signers that sealed too recently skipped) waits k back-off
// steps, plus a little jitter, and the next one only takes over when the one before it is
// late by a whole step (down, or still building).
const backoffMs = Number(process.env.CHRONOSEAL_CLIQUE_BACKOFF_MS ?? '1000');
function outOfTurnDelay(miner) {
  const consensus = miner.service.chain.blockchain.consensus;
  const [signerAddress] = miner.config.accounts[0];
  const number = miner.service.chain.blocks.latest.header.number + 1n;
  const signers = consensus.cliqueActiveSigners(number);
  const mine = signers.findIndex((a) => a.equals(signerAddress));
  if (mine < 0 || signers.length < 2) return 0;
  // the same window the consensus checks (cliqueCheckRecentlySigned)
  const limit = consensus.cliqueSignerLimit(number);
  let recent = consensus._cliqueLatestBlockSigners;
  recent = recent.slice(recent.length < limit ? 0 : 1);
  if (recent.length > 0 && recent[recent.length - 1][0] !== number - 1n) recent = [];
  const first = Number(number % BigInt(signers.length));
  let rank = 0;
  for (let step = 0; step < signers.length; step++) {
    const at = (first + step) % signers.length;
    if (at === mine) break;
    if (!recent.some(([, s]) => s.equals(signers[at]))) rank++;
  }
  if (rank === 0) return 0;
  return rank * backoffMs + Math.random() * backoffMs / 4;
}
Miner.prototype.queueNextAssembly = async function (timeout) {
  if (this._nextAssemblyTimeoutId) clearTimeout(this._nextAssemblyTimeoutId);
  if (!this.running) return;
  const nextBlockHf = this.config.chainCommon.getHardforkBy({
    blockNumber: this.service.chain.headers.height + 1n,
  });
  if (this.config.chainCommon.hardforkGteHardfork(nextBlockHf, Hardfork.Paris)) {
    this.config.logger?.info('Miner: reached merge hardfork - stopping');
    this.stop();
    return;
  }
  let wait = timeout ?? this.period;
  try {
    wait += outOfTurnDelay(this);
  } catch (err) {
    wait += backoffMs;
    this.config.logger?.warn(`Miner: sealing order unknown (${err?.message ?? err})`);
  }
  this._nextAssemblyTimeoutId = setTimeout(this.assembleBlock.bind(this), wait);
};
// Transactions of a block a reorganisation dropped go back into the pool (as geth does):
// the sealer and the importers took them out when the block arrived, and the block that
// replaced it may not carry them. Retried while the new head's state is still executing;
// a transaction the new chain carries is refused as `nonce too low` and stays out.
function repool(service, blocks) {
  const txs = blocks.flatMap((b) => b.transactions);
  const logger = service.config.logger;
  for (const b of blocks) {
    const id = `${b.header.number} 0x${hex(b.hash()).slice(0, 8)}`;
    logger?.info(`Reorg: block ${id} dropped (${b.transactions.length} txs)`);
  }
  for (const tx of txs) {
    let attempts = 0;
    const retry = async () => {
      attempts++;
      try {
        await service.txPool.add(tx, true);
        const announce = [[tx.type], [tx.serialize().byteLength], [tx.hash()]];
        service.txPool.sendNewTxHashes(announce, service.pool.peers);
        logger?.info(`Reorg: tx 0x${hex(tx.hash()).slice(0, 8)} back in the pool`);
      } catch (err) {
        const message = `${err?.message ?? err}`;
        if (message.includes('nonce too low') || message.includes('already in the TxPool')) return;
        if (attempts < 40) setTimeout(() => void retry(), 250).unref();
        else logger?.warn(`Reorg: tx 0x${hex(tx.hash()).slice(0, 8)} not put back: ${message}`);
      }
    };
    setTimeout(() => void retry(), 250).unref();
  }
}
// The miner builds on the newest block as soon as it arrives, but the client executes
// received blocks asynchronously: building on a parent whose state is not there yet throws
// outside any handler and the node exits (seen even after the check below, when the next
// block lands in between). Wait for the parent's state, and retry instead of exiting.
// Nor does it seal while a peer announces a heavier chain: a restarted node that sealed
// before it had synced the block it missed forked the chain at equal difficulty, and with
// one validator of four down neither side had a signer left to extend it (Clique lets a
// signer seal one block in floor(N/2) + 1): the chain stopped.
const assembleBlock = Miner.prototype.assembleBlock;
Miner.prototype.assembleBlock = async function () {
  const chain = this.service.chain;
  const parent = chain.blocks.latest;
  let ready = false;
  try {
    ready = await this.execution.vm.stateManager.hasStateRoot(parent.header.stateRoot);
  } catch {
    ready = false;
  }
  const behind = this.service.pool.peers.some((peer) => {
    const td = peer.eth?.status?.td;
    return typeof td === 'bigint' && td > chain.blocks.td;
  });
  if (!ready || behind) {
    if (this.running) setTimeout(() => void this.assembleBlock(), 200);
    return;
  }
  try {
    return await assembleBlock.call(this);
  } catch (err) {
    this.assembling = false;
    this.config.logger?.warn(`Miner: block not assembled (${err?.message ?? err}): retrying`);
    if (this.running) setTimeout(() => void this.assembleBlock(), 200);
  }
};
// Seal only once peered: at genesis with every other validator (else each seals its own
// block 1 and the network splits), later with one peer and the sync quiet for 3 s.
const startMiner = Miner.prototype.start;
Miner.prototype.start = function () {
  if (!this.config.mine || this.running || this._gated) return false;
  this._gated = true;
  const service = this.service;
  service.chain.blockchain.events.on('deletedCanonicalBlocks', (blocks) => repool(service, blocks));
  const needAll = Number(process.env.CHRONOSEAL_CLIQUE_PEERS ?? '0');
  let lastUpdate = Date.now();
  this.config.events.on(Event.CHAIN_UPDATED, () => { lastUpdate = Date.now(); });
  const gate = () => {
    const peers = this.service.pool.size;
    const height = this.service.chain.headers.height;
    const ready = height === 0n ? peers >= needAll : peers >= 1 && Date.now() - lastUpdate > 3000;
    if (ready) {
      this.config.logger?.info(`Miner: sealing with ${peers} peers at height ${height}`);
      startMiner.call(this);
    } else {
      setTimeout(gate, 250);
    }
  };
  gate();
  return true;
};
const original = FullSynchronizer.prototype.handleNewBlock;
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
FullSynchronizer.prototype.sendNewBlock = async function (block, _peers) {
  for (const peer of this.pool.peers) {
    if (this.addToKnownByPeer(block.hash(), peer)) continue;
    try {
      peer.eth?.send('NewBlock', [block, this.chain.blocks.td]);
    } catch (err) {  // a peer that died keeps its pool slot until it times out
      this.config.logger?.debug(`NewBlock to ${peer.id} failed: ${err}`);
    }
  }
};
FullSynchronizer.prototype.handleNewBlock = async function (block, peer) {
  const tip = this.chain.blocks.latest;
  const child = tip !== null && tip !== undefined && same(tip.hash(), block.header.parentHash);
  if (!child && block.header.number <= this.chain.headers.height + 1n) {
    if (peer) this.addToKnownByPeer(block.hash(), peer);
    try {
      await this.chain.blockchain.validateHeader(block.header);
    } catch {
      return;
    }
    await this.sendNewBlock(block, this.pool.peers);
    try {
      if (tieLost(tip, block)) {
        // a sibling of our tip of the same difficulty: the chain keeps the first it saw,
        // so two halves of the network can each keep their own. Both sides settle on the
        // lower hash (geth breaks such ties too, at random): unwind our tip, take theirs.
        this.config.logger?.info(`Clique tie at ${block.header.number}: taking the lower hash`);
        await unwindTip(this.chain.blockchain, tip);
      }
      await this.chain.putBlocks([block]);
    } catch (err) {
      this.config.logger?.debug(`side block not stored: ${err}`);
    }
    return;
  }
  return original.call(this, block, peer);
};
const hex = (bytes) => Buffer.from(bytes).toString('hex');
// Make the tip's parent the head again, the way the blockchain itself unwinds a stale
// branch on a reorganisation: under its lock, canonical number->hash entries dropped, every
// iterator head that named the tip (the VM's) moved to the parent, the Clique signer
// snapshot rolled back, the heads saved, and `deletedCanonicalBlocks` emitted (the client
// then drops the tip's receipts and their index). The tip stays stored as a side block.
// `Blockchain.delBlock`, used here before, takes no lock (its own comment says so) and
// deletes the block: the VM, executing it meanwhile, saved its receipts and moved its head
// onto a block no longer in the DB (`value for 0x... not found in DB` from then on).
async function unwindTip(blockchain, tip) {
  let dropped = [];
  await blockchain.runWithLock(async () => {
    const head = blockchain._headHeaderHash;
    if (head === undefined || !same(head, tip.hash())) return;  // moved on meanwhile
    const ops = [];
    await blockchain._deleteCanonicalChainReferences(tip.header.number, tip.header.parentHash, ops);
    await blockchain.consensus?._cliqueDeleteSnapshots?.(tip.header.number - 1n);
    ops.push(...blockchain._saveHeadOps());
    await blockchain.dbManager.batch(ops);
    dropped = blockchain._deletedBlocks;
    blockchain._deletedBlocks = [];
  });
  if (dropped.length > 0) blockchain.events.emit('deletedCanonicalBlocks', dropped);
}
function tieLost(tip, block) {
  return tip !== null && tip !== undefined
    && block.header.number === tip.header.number
    && block.header.number > 0n
    && same(tip.header.parentHash, block.header.parentHash)
    && block.header.difficulty === tip.header.difficulty
    && hex(block.hash()) < hex(tip.hash());
}
"""


# --- one validator's command line: the loopback network and a member's deployed node ------


def write_gossip_patch(binary: str, patch: Path) -> None:
    """Write ``_GOSSIP_JS`` to ``patch``, its imports pointing into the client ``binary``
    belongs to (``PREFIX/node_modules/.bin/ethereumjs``); rewritten only if it changed."""
    prefix = Path(binary).parent.parent
    src = prefix / "@ethereumjs" / "client" / "dist" / "esm" / "src"
    text = _GOSSIP_JS.replace("__FULLSYNC__", (src / "sync" / "fullsync.js").as_uri())
    text = text.replace("__MINER__", (src / "miner" / "miner.js").as_uri())
    text = text.replace("__TYPES__", (src / "types.js").as_uri())
    vm = prefix / "@ethereumjs" / "vm" / "dist" / "esm" / "index.js"
    text = text.replace("__VM__", vm.as_uri())
    evm = prefix / "@ethereumjs" / "evm" / "dist" / "esm" / "index.js"
    text = text.replace("__EVM__", evm.as_uri())
    common = prefix / "@ethereumjs" / "common" / "dist" / "esm" / "index.js"
    text = text.replace("__COMMON__", common.as_uri())
    text = text.replace("__SERVICE__", (src / "service" / "fullethereumservice.js").as_uri())
    rlpx = src / "net" / "server" / "rlpxserver.js"
    text = text.replace("__RLPX__", rlpx.as_uri())
    block = prefix / "@ethereumjs" / "block" / "dist" / "esm" / "index.js"
    text = text.replace("__BLOCK__", block.as_uri())
    text = text.replace("__RECEIPT__", (src / "execution" / "receipt.js").as_uri())
    chain = prefix / "@ethereumjs" / "blockchain" / "dist" / "esm" / "index.js"
    text = text.replace("__BLOCKCHAIN__", chain.as_uri())
    if not patch.exists() or patch.read_text() != text:
        patch.parent.mkdir(parents=True, exist_ok=True)
        patch.write_text(text)


def client_command(
    binary: str,
    patch: Path,
    *,
    genesis: Path,
    data_dir: Path,
    p2p_port: int,
    ext_ip: str,
    rpc_addr: str,
    rpc_port: int,
    signer_key_file: Path,
    log_level: str = "info",
) -> list[str]:
    """The client's command line for one Clique validator: the gossip patch loaded first,
    the members' genesis, its own RLPx and JSON-RPC listeners, sealing with its signer key
    (the client reads a plaintext key file), discovery off (peers are static)."""
    entry = Path(binary).resolve()
    return [
        "node", "--import", patch.as_uri(), str(entry),
        "--gethGenesis", str(genesis),
        "--dataDir", str(data_dir),
        "--port", str(p2p_port), "--extIP", ext_ip,
        "--rpc", "--rpcAddr", rpc_addr, "--rpcPort", str(rpc_port),
        "--mine", "--unlock", str(signer_key_file),
        "--discDns", "false", "--discV4", "false",
        "--logLevel", log_level,
    ]  # fmt: skip


def client_env(validators: int, static_peers: list[str]) -> dict[str, str]:
    """What the gossip patch reads: how many peers to wait for before sealing block 1, the
    chain's contract-size limit, and the validators this node dials (``static_peer``)."""
    return {
        "CHRONOSEAL_CLIQUE_PEERS": str(validators - 1),
        "CHRONOSEAL_CLIQUE_MAX_CODE_SIZE": str(MAX_CODE_SIZE),
        "CHRONOSEAL_STATIC_PEERS": ",".join(static_peers),
    }


def static_peer(node_id: str, host: str, port: int) -> str:
    """One entry of the patch's static peers: the peer's node id (its node key's public key,
    128 hex digits) at ``host`` (an address or a DNS name) and its RLPx port."""
    return f"{node_id}@{host}:{port}"


def node_id_of(node_key_hex: str) -> str:
    """The node id (enode public key, 128 hex digits) of a node key (64 hex digits)."""
    return PrivateKey(bytes.fromhex(node_key_hex)).public_key.to_bytes().hex()


def clique_signers(genesis: object) -> list[str]:
    """The signer addresses a Clique genesis' extra-data lists (``clique_extra_data``)."""
    raw = genesis.get("extraData", "") if isinstance(genesis, dict) else ""
    try:
        extra = bytes.fromhex(str(raw).removeprefix("0x"))
    except ValueError:
        extra = b""
    body = extra[len(_VANITY) : len(extra) - len(_SEAL)]
    if len(extra) < len(_VANITY) + len(_SEAL) + 20 or len(body) % 20:
        raise ValidatorError(
            "the genesis extra-data is not a Clique signer list (32 vanity bytes, 20 bytes "
            "per signer, a 65-byte seal)",
            id="ledger.validators.genesis",
        )
    return ["0x" + body[i : i + 20].hex() for i in range(0, len(body), 20)]


@dataclass
class Validator:
    """One member's node: its signer, its ports, its process while it runs."""

    index: int
    name: str
    signer: str
    datadir: Path
    p2p_port: int
    rpc_port: int
    node_id: str
    proc: subprocess.Popen[bytes] | None = None
    down: bool = False  # stopped on purpose: the supervisor leaves it alone

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def enode(self) -> str:
        return f"enode://{self.node_id}@127.0.0.1:{self.p2p_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class _Head:
    number: int
    since: float


@dataclass
class ValidatorNetwork:
    """N Clique validators of the EthereumJS client under ``directory``.

    ``directory`` keeps everything: ``network.json`` (names, signers, ports), the genesis,
    ``keys/`` (each validator's signer key, readable by its owner only, and the dev faucet's
    key), each node's data directory and log, and ``rpc-urls`` once every node answers.
    Creating it again over an existing directory continues the same chain.
    """

    directory: Path
    validators: list[Validator]
    binary: str
    period: int
    chain_id: int
    log: Log = field(default=lambda _msg: None)
    _heads: dict[int, _Head] = field(default_factory=dict)
    _stuck_at: dict[int, int] = field(default_factory=dict)
    _strikes: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    restarts: int = 0
    log_level: str = "info"

    @classmethod
    def create(
        cls,
        directory: Path,
        names: list[str] | int,
        *,
        period: int = 1,
        chain_id: int = CLIQUE_CHAIN_ID,
        binary: str | None = None,
        log: Log | None = None,
    ) -> ValidatorNetwork:
        """Write keys, genesis and node identities (or load them if ``directory`` has them)."""
        found = binary or find_ethereumjs()
        if found is None:
            raise ValidatorError(
                f"the EthereumJS client is not installed: run scripts/ethereumjs (npm "
                f"@ethereumjs/client) or set {ETHEREUMJS_ENV}",
                id="ledger.validators.client_missing",
            )
        directory = directory.resolve()
        meta = directory / "network.json"
        if meta.exists():
            return cls._load(meta, found, log)
        if isinstance(names, int):
            names = [f"member-{i + 1}" for i in range(names)]
        if len(names) < 1:
            raise ValidatorError("a network needs at least one validator")
        if not 1 <= period <= 60:
            raise ValidatorError(f"block period {period} s is outside 1..60 s")
        directory.mkdir(parents=True, exist_ok=True)
        validators: list[Validator] = []
        alloc: dict[str, int] = {}
        for i, name in enumerate(names):
            signer = Account.create()
            _write_secret(directory / "keys" / f"validator-{i}.key", signer.key.hex())
            node_key = secrets.token_bytes(32)
            node_id = node_id_of(node_key.hex())
            datadir = directory / f"node-{i}"
            seed_node_key(found, datadir / GENESIS_NAME / "config", node_key.hex())
            alloc[signer.address] = VALIDATOR_WEI
            validators.append(
                Validator(i, name, signer.address, datadir, _free_port(), _free_port(), node_id)
            )
        faucet = Account.create()
        _write_secret(directory / "keys" / "faucet.key", faucet.key.hex())
        alloc[faucet.address] = FAUCET_WEI
        genesis = clique_genesis(
            [v.signer for v in validators], alloc, period=period, chain_id=chain_id
        )
        (directory / f"{GENESIS_NAME}.json").write_text(json.dumps(genesis, indent=1))
        doc = {
            "chain_id": chain_id,
            "period": period,
            "faucet": faucet.address,
            "validators": [
                {
                    "name": v.name,
                    "signer": v.signer,
                    "p2p_port": v.p2p_port,
                    "rpc_port": v.rpc_port,
                    "node_id": v.node_id,
                }
                for v in validators
            ],
        }
        meta.write_text(json.dumps(doc, indent=1))
        return cls(directory, validators, found, period, chain_id, log or (lambda _m: None))

    @classmethod
    def _load(cls, meta: Path, binary: str, log: Log | None) -> ValidatorNetwork:
        doc = json.loads(meta.read_text())
        directory = meta.parent
        validators = [
            Validator(
                i,
                str(v["name"]),
                str(v["signer"]),
                directory / f"node-{i}",
                int(v["p2p_port"]),
                int(v["rpc_port"]),
                str(v["node_id"]),
            )
            for i, v in enumerate(doc["validators"])
        ]
        return cls(
            directory,
            validators,
            binary,
            int(doc["period"]),
            int(doc["chain_id"]),
            log or (lambda _m: None),
        )

    @property
    def urls(self) -> list[str]:
        return [v.url for v in self.validators]

    @property
    def faucet_key_file(self) -> Path:
        return self.directory / "keys" / "faucet.key"

    def _gossip_patch(self) -> Path:
        patch = self.directory / "gossip.mjs"
        write_gossip_patch(self.binary, patch)
        return patch

    def _command(self, v: Validator) -> list[str]:
        return client_command(
            self.binary,
            self._gossip_patch(),
            genesis=self.directory / f"{GENESIS_NAME}.json",
            data_dir=v.datadir,
            p2p_port=v.p2p_port,
            ext_ip="127.0.0.1",
            rpc_addr="127.0.0.1",
            rpc_port=v.rpc_port,
            signer_key_file=self.directory / "keys" / f"validator-{v.index}.key",
            log_level=self.log_level,
        )

    def _static_peers(self, v: Validator) -> list[str]:
        """The validators node ``v`` keeps a link to by dialling them: the ones after it
        (one dialler per pair, so two nodes never race to open the same link)."""
        later = [o for o in self.validators if o.index > v.index]
        return [static_peer(o.node_id, "127.0.0.1", o.p2p_port) for o in later]

    def start_node(self, index: int) -> None:
        """Start (or restart) validator ``index``; it re-syncs from its peers."""
        v = self.validators[index]
        if v.running:
            return
        log_path = self.directory / "logs" / f"validator-{index}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **client_env(len(self.validators), self._static_peers(v))}
        with log_path.open("ab") as out:
            v.proc = subprocess.Popen(
                self._command(v),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=v.datadir,
                start_new_session=True,
            )
        v.down = False
        self._heads.pop(index, None)

    def stop_node(self, index: int, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop validator ``index`` (SIGKILL with ``kill``: a crash) and keep it down."""
        v = self.validators[index]
        v.down = True
        proc = v.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def head(self, index: int, timeout: float = 2.0) -> tuple[int, str] | None:
        """The node's latest block (number, hash), or ``None`` if it does not answer."""
        reply = _rpc(self.validators[index].url, "eth_getBlockByNumber", ["latest", False], timeout)
        if not isinstance(reply, dict):
            return None
        return int(reply["number"], 16), str(reply["hash"])

    def peer_count(self, index: int) -> int | None:
        reply = _rpc(self.validators[index].url, "net_peerCount", [], 2.0)
        return int(reply, 16) if isinstance(reply, str) else None

    def start(self, timeout: float = 120.0) -> None:
        """Start every node, wait until each answers and the chain seals, write ``rpc-urls``."""
        for v in self.validators:
            self.start_node(v.index)
        deadline = time.monotonic() + timeout
        while True:
            heads = [self.head(v.index) for v in self.validators]
            if all(h is not None and h[0] >= 1 for h in heads):
                break
            for v in self.validators:
                if v.proc is not None and v.proc.poll() is not None:
                    self.stop()
                    raise ValidatorError(
                        f"validator {v.index} ({v.name}) exited with code {v.proc.returncode}; "
                        f"see {self.directory / 'logs' / f'validator-{v.index}.log'}",
                        id="ledger.validators.start",
                    )
            if time.monotonic() > deadline:
                self.stop()
                raise ValidatorError(
                    f"the validators did not all answer and seal within {timeout:.0f} s",
                    id="ledger.validators.start",
                )
            time.sleep(0.5)
        tmp = self.directory / "rpc-urls.tmp"
        tmp.write_text("".join(f"{u}\n" for u in self.urls))
        os.replace(tmp, self.directory / "rpc-urls")
        self.log(f"{len(self.validators)} validators sealing every {self.period} s")

    def supervise_once(self, now: float | None = None) -> list[int]:
        """Restart the running nodes that lag the best head for too long; return them."""
        now = time.monotonic() if now is None else now
        # generous: a node importing or executing a batch does not move its head for a
        # while, and a restart in the middle of a sync only sets it back
        stall = max(20.0, 10.0 * self.period)
        heads: dict[int, int] = {}
        for v in self.validators:
            if v.down or not v.running:
                continue
            h = self.head(v.index)
            if h is not None:
                heads[v.index] = h[0]
        if not heads:
            return []
        best = max(heads.values())
        restarted = []
        for v in self.validators:
            if not v.down and v.proc is not None and v.proc.poll() is not None:
                self.log(f"validator {v.index} exited with code {v.proc.returncode}: restarting")
                self.start_node(v.index)
                self.restarts += 1
                self._heads[v.index] = _Head(-1, now + stall)
                return [v.index]
        for index, number in heads.items():
            seen = self._heads.get(index)
            if seen is None or seen.number != number:
                self._heads[index] = _Head(number, now)
                continue
            # not advanced since ``seen.since``: behind the others, or everyone stalled
            behind = number < best
            halted = now - seen.since > 3 * stall
            if (behind and now - seen.since > stall) or halted:
                strikes = (
                    self._strikes.get(index, 0) + 1 if self._stuck_at.get(index) == number else 1
                )
                self._stuck_at[index], self._strikes[index] = number, strikes
                again = strikes >= 3 and behind
                action = "re-syncing it from its peers" if again else "restarting"
                self.log(f"validator {index} stuck at block {number} (best {best}): {action}")
                self.stop_node(index)
                if again:  # a restart did not help: it sits on a fork the client never leaves
                    self.wipe_chain(index)
                self.start_node(index)
                self.restarts += 1
                restarted.append(index)
                self._heads[index] = _Head(number, now + 2 * stall)  # time to sync
                break  # one at a time: a restart changes everyone's view
        return restarted

    def wipe_chain(self, index: int) -> None:
        """Drop a stopped node's blocks and state (not its node key): it syncs anew."""
        network_dir = self.validators[index].datadir / GENESIS_NAME
        for part in ("chain", "state", "meta", "invalidPayloads"):
            shutil.rmtree(network_dir / part, ignore_errors=True)
        self._stuck_at.pop(index, None)
        self._strikes.pop(index, None)

    def start_supervisor(self, interval: float = 1.0) -> None:
        """Watch the nodes in a background thread until ``stop``."""

        def loop() -> None:
            while not self._stop.wait(interval):
                self.supervise_once()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="validator-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the supervisor and every node."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for v in self.validators:
            self.stop_node(v.index)


def seed_node_key(binary: str, config_dir: Path, key_hex: str) -> None:
    """Store the node key where the client looks for it, so its enode id is stable."""
    prefix = Path(binary).parent.parent.parent  # PREFIX/node_modules/.bin/ethereumjs
    config_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", _SEED_KEY_JS, str(config_dir), key_hex],
        cwd=prefix,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise ValidatorError(
            f"could not write the node key into {config_dir}: {proc.stderr.strip()[-400:]}",
            id="ledger.validators.node_key",
        )


def _rpc(url: str, method: str, params: list[Any], timeout: float) -> Any:
    """One JSON-RPC call with the standard library (the supervisor needs no web3)."""
    import urllib.error
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read()).get("result")
    except (OSError, ValueError, urllib.error.URLError):
        return None


def run_network(directory: Path, n: int, *, period: int, log: Log) -> None:
    """``scripts/consortium-chain``: create, start, supervise until SIGINT/SIGTERM, stop."""
    network = ValidatorNetwork.create(directory, n, period=period, log=log)
    stopping = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        network.start()
        log(f"rpc urls in {directory / 'rpc-urls'}; faucet key in {network.faucet_key_file}")
        network.start_supervisor()
        while not stopping.wait(1.0):
            pass
    finally:
        network.stop()
        log("validators stopped")
