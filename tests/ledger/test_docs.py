"""docs/ledger.md lists every refusal id the contract can raise, and no stale ones."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_contract_refusal_id_is_documented() -> None:
    source = (ROOT / "src/chronoseal/ledger/contracts/Consortium.vy").read_text()
    contract_ids = set(re.findall(r'"(ledger\.[a-z_.]+)"', source))
    docs = (ROOT / "docs/ledger.md").read_text()
    table = docs[docs.index("### Refusal ids") : docs.index("Client-side ids")]
    documented = set(re.findall(r"`(ledger\.[a-z_.]+)`", table))
    for short in re.findall(r"`ledger\.([a-z]+)\.[a-z_]+` / ([`a-z_ /]+)\|", table):
        documented |= {f"ledger.{short[0]}.{s.strip('` ')}" for s in short[1].split("/")}
    assert contract_ids - documented == set()
    assert documented - contract_ids == set()
