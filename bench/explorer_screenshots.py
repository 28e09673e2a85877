"""Screenshots of the explorer's main pages for docs/explorer.md (docs/img/explorer-*.png).

Runs the bundled demo on the embedded chain (``--until``, default ``serving``), serves the
explorer next to it, builds a second small consortium with a disputed task (the explorer
tests' world), and photographs the pages with headless Chromium (``CHRONOSEAL_CHROMIUM`` or
``scripts/chromium``). Run it through ``scripts/explorer-screenshots``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from chronoseal.explorer import start_explorer
from chronoseal.ledger import Consortium, EmbeddedChain
from chronoseal.node import bundled_scenario, load_scenario, run_demo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "explorer"))
from explorer_world import build_explorer_world  # noqa: E402


def shoot(page: Page, url: str, out: Path, wait_for: str = "main") -> None:
    page.goto(url)
    page.wait_for_selector(wait_for)
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--until", default="serving", choices=["running", "trained", "serving"])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    chromium = os.environ.get("CHRONOSEAL_CHROMIUM")
    if not chromium:
        sys.exit("set CHRONOSEAL_CHROMIUM (scripts/chromium prints the path)")
    args.out.mkdir(parents=True, exist_ok=True)
    chain = EmbeddedChain()
    print(f"running the demo until {args.until} …")
    report = run_demo(
        load_scenario(bundled_scenario()), log=lambda _: None, chain=chain, until=args.until
    )
    task = "0x" + report.task_id.hex()
    other = build_explorer_world(EmbeddedChain())
    disputed = "0x" + other.tasks["disputed"].hex()
    with (
        start_explorer(Consortium.at(chain, report.contract)) as demo,
        start_explorer(other.consortium) as world,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        shoot(page, demo.url + "/", args.out / "explorer-consortium.png")
        shoot(page, world.url + "/", args.out / "explorer-governance.png")
        shoot(page, demo.url + "/measurements", args.out / "explorer-measurements.png")
        shoot(page, world.url + "/tasks", args.out / "explorer-tasks.png")
        shoot(page, f"{demo.url}/tasks/{task}", args.out / "explorer-task.png")
        shoot(page, f"{demo.url}/tasks/{task}/verify", args.out / "explorer-verify.png", "#checks")
        shoot(page, f"{world.url}/tasks/{disputed}", args.out / "explorer-task-disputed.png")
        shoot(
            page,
            f"{world.url}/tasks/{disputed}/verify",
            args.out / "explorer-verify-disputed.png",
            "#checks",
        )
        browser.close()


if __name__ == "__main__":
    main()
