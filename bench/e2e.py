"""End to end: the demo's time by stage, and one process vs one process per component.

Both runs take the same scenario through Serving and end with the audit from the chain:

* **one process** (``chronoseal demo`` / ``run`` without ``--rpc``): embedded chain (py-evm),
  every component a thread of one Python process — the baseline;
* **separate processes** (``chronoseal run --rpc anvil``): an anvil node, a ``party serve``
  per participant, the analysis and prediction runtimes and a gateway per provider, each its
  own OS process, coordinated only through the chain.

Reported: seconds per stage of the one-process run, total seconds of each, and
``ratio_separate_vs_one_process``. Chain transactions and gas per task for 3 and 10 parties
are ``bench/ledger.py``'s job (its ``gas_per_lifecycle``).

    python bench/e2e.py --quick   # the scenario with 2 back-test windows, no contribution
    python bench/e2e.py           # the bundled scenario as the demo runs it

Needs anvil for the separate-process run (``scripts/anvil``; left out with a note when it is
absent). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chronoseal.ledger import JsonRpcChain
from chronoseal.node import (
    Anvil,
    DemoConsortium,
    bundled_scenario,
    find_anvil,
    load_scenario,
    run_separate,
)


def scenario_copy(root: Path, quick: bool) -> Path:
    target = root / "scenario"
    shutil.copytree(bundled_scenario().parent, target)
    if quick:
        task = target / "task.toml"
        text = task.read_text().replace("windows = 13", "windows = 2")
        task.write_text(text.replace("contribution = {", "# contribution = {"))
    return target / "scenario.toml"


def one_process(path: Path) -> dict[str, Any]:
    start = time.monotonic()
    report = DemoConsortium(load_scenario(path), lambda _: None).run()
    total = time.monotonic() - start
    assert report.audit is not None and report.audit.verified, "the audit failed"
    return {"total_s": round(total, 2), "stages_s": report.to_json()["stages_s"]}


def separate(path: Path, work: Path) -> dict[str, Any]:
    start = time.monotonic()
    anvil = Anvil.start(work)
    try:
        report = run_separate(
            load_scenario(path),
            chain=JsonRpcChain(anvil.url),
            chain_url=anvil.url,
            work=work,
            log=lambda _: None,
        )
    finally:
        anvil.stop()
    total = time.monotonic() - start
    assert report.audit is not None and report.audit.verified, "the audit failed"
    return {"total_s": round(total, 2), "stages_s": report.to_json()["stages_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 back-test windows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chronoseal-bench-e2e-") as tmp:
        root = Path(tmp)
        path = scenario_copy(root, args.quick)
        result: dict[str, Any] = {"bench": "e2e", "quick": args.quick}
        result["one_process"] = one = one_process(path)
        print(f"one process: {one['total_s']} s  {one['stages_s']}", file=sys.stderr)
        if find_anvil() is None:
            result["separate_processes"] = None
            result["note"] = "anvil not installed (scripts/anvil): separate run left out"
        else:
            result["separate_processes"] = sep = separate(path, root / "work")
            print(f"separate: {sep['total_s']} s  {sep['stages_s']}", file=sys.stderr)
            result["ratio_separate_vs_one_process"] = round(sep["total_s"] / one["total_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
