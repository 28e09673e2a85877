"""The explorer in a real browser (Debian's Chromium, headless, driven by Playwright): the
pages of a chain where the demo task ran, its timeline, Verify, a disputed task, live
updates and a node that goes away and comes back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import pytest
from explorer_world import ExplorerWorld
from playwright.sync_api import Page, expect
from rpc_proxy import RpcProxy

from chronoseal.explorer import RunningExplorer, open_consortium, start_explorer
from chronoseal.ledger import Consortium, EmbeddedChain
from chronoseal.node import bundled_scenario, load_scenario, run_demo
from chronoseal.spec import TaskSpec

pytestmark = pytest.mark.browser
WAIT_MS = 20_000


def _css_rgb(variable: str) -> str:
    """The computed form of a colour variable declared in the explorer's own stylesheet."""
    css = (resources.files("chronoseal.explorer") / "static" / "explorer.css").read_text()
    found = re.search(rf"{variable}:\s*#([0-9a-fA-F]{{6}})", css)
    assert found, f"{variable} is not declared in explorer.css"
    r, g, b = (int(found.group(1)[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


FAIL_BG = _css_rgb("--fail-bg")


@dataclass
class DemoChain:
    explorer: RunningExplorer
    task_id: str
    participants: list[str]
    spec: TaskSpec


@pytest.fixture(scope="module")
def demo(chromium_path: str) -> Iterator[DemoChain]:
    """The bundled demo up to Trained (about a minute), with the explorer next to it."""
    chain = EmbeddedChain()
    scenario = load_scenario(bundled_scenario())
    report = run_demo(scenario, log=lambda _: None, chain=chain, until="trained")
    consortium = Consortium.at(chain, report.contract)
    with start_explorer(consortium) as explorer:
        yield DemoChain(explorer, "0x" + report.task_id.hex(), report.participants, scenario.spec)


@pytest.fixture(scope="module")
def disputed(world: ExplorerWorld, chromium_path: str) -> Iterator[RunningExplorer]:
    with start_explorer(world.consortium) as explorer:
        yield explorer


def test_each_page_renders(page: Page, demo: DemoChain) -> None:
    page.goto(demo.explorer.url + "/")
    expect(page.locator("h1")).to_have_text("Consortium")
    expect(page.locator("#members tbody tr")).to_have_count(3)
    for name in demo.participants:
        expect(page.locator("#members")).to_contain_text(name)
    expect(page.locator("#simulated-tee")).to_have_text("simulated TEE allowed")
    page.click("nav >> text=Measurements")
    expect(page.locator("h1")).to_have_text("Measurements")
    rows = page.locator("#measurements tbody tr")
    pins = demo.spec.measurements.pins()  # gateway, analysis, analysis_worker, prediction
    expect(rows).to_have_count(len(pins))
    for component in pins:
        expect(page.locator("#measurements")).to_contain_text(component.value)
    for i in range(len(pins)):
        expect(rows.nth(i)).to_contain_text("usable")
        expect(rows.nth(i)).to_contain_text(demo.task_id[:12])
    page.click("nav >> text=Tasks")
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    expect(page.locator("#tasks .state")).to_have_text("Trained")


def test_open_the_task_see_its_timeline_and_verify_every_check(page: Page, demo: DemoChain) -> None:
    page.goto(demo.explorer.url + "/tasks")
    page.click(f'#tasks a[href="/tasks/{demo.task_id}"]')
    expect(page.locator("h1 .task-id")).to_have_text(demo.task_id)
    expect(page.locator(".facts .state").first).to_have_text("Trained")
    expect(page.locator('#timeline tr[data-event="TaskStateChanged"]')).to_have_count(4)
    expect(page.locator('#timeline tr[data-event="TaskApproved"]')).to_have_count(3)
    expect(page.locator("#timeline")).to_contain_text("EIP-712 signature relayed by")
    expect(page.locator("#commitments tr.commitment-matched")).to_have_count(3)
    expect(page.locator("#metrics-digest code")).to_have_text(re.compile(r"^0x[0-9a-f]{10}"))
    page.click("#verify")
    expect(page.locator("#overall")).to_contain_text("verified: no check failed", timeout=WAIT_MS)
    checks = page.locator("#checks tr.check")
    assert checks.count() >= 10
    expect(page.locator('#checks tr[data-verdict="fail"]')).to_have_count(0)
    passed = page.locator('#checks tr[data-verdict="pass"]')
    for check in ("audit.approvals", "audit.signatures", "audit.commitments", "audit.model"):
        expect(passed.locator(f'code:text-is("{check}")')).to_have_count(1)


def test_a_disputed_task_is_shown_disputed_and_verify_fails_on_commitments(
    page: Page, world: ExplorerWorld, disputed: RunningExplorer
) -> None:
    task = "0x" + world.tasks["disputed"].hex()
    page.goto(disputed.url + "/tasks")
    expect(page.locator(f'tr[data-task="{task}"] .state')).to_have_text("Disputed")
    page.click(f'#tasks a[href="/tasks/{task}"]')
    expect(page.locator("#disputed")).to_be_visible()
    expect(page.locator('#commitments tr[data-party="beta"]')).to_contain_text("disputed")
    expect(page.locator('#timeline tr[data-event="CommitmentMismatched"]')).to_have_count(1)
    page.click("#verify")
    failed = page.locator('#checks tr[data-check="audit.commitments"]')
    expect(failed).to_have_attribute("data-verdict", "fail", timeout=WAIT_MS)
    expect(failed).to_have_class(re.compile(r"check-fail"))
    expect(failed.locator("code.id")).to_have_text("audit.commitments")
    # The row is re-rendered as the live view refreshes: let Playwright retry on the cell it
    # finds, so the check reads the styled row, not one caught between renders.
    expect(failed.locator("td").first).to_have_css("background-color", FAIL_BG, timeout=WAIT_MS)
    expect(page.locator("#overall")).to_contain_text("not verified")
    expect(page.locator("#overall")).to_contain_text("audit.commitments")


def test_the_task_page_updates_live_while_the_task_runs(
    page: Page, fresh_world: ExplorerWorld
) -> None:
    task = fresh_world.tasks["serving"]
    with start_explorer(fresh_world.consortium) as explorer:
        page.goto(f"{explorer.url}/tasks/0x{task.hex()}")
        expect(page.locator("#audit-counts")).to_contain_text("1 audit batches")
        fresh_world.audit_root(task, 1)
        fresh_world.audit_root(task, 2)
        expect(page.locator("#audit-counts")).to_contain_text("3 audit batches", timeout=WAIT_MS)
        expect(page.locator('#timeline tr[data-event="AuditRootPosted"]')).to_have_count(3)
        expect(page.locator("#refresh-stats")).to_contain_text("cache:")


def test_a_node_that_goes_away_is_said_and_the_page_recovers(
    page: Page, fresh_world: ExplorerWorld
) -> None:
    assert isinstance(fresh_world.chain, EmbeddedChain)
    proxy = RpcProxy(fresh_world.chain)
    proxy.start()
    task = fresh_world.tasks["serving"]
    try:
        remote = open_consortium(
            proxy.url,
            fresh_world.consortium.address,
            from_block=fresh_world.consortium.deploy_block,
        )
        with start_explorer(remote) as explorer:
            page.goto(f"{explorer.url}/tasks/0x{task.hex()}")
            expect(page.locator("#audit-counts")).to_contain_text("1 audit batches")
            proxy.stop()
            banner = page.locator("#live-status")
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(banner).to_contain_text("cannot be reached")
            fresh_world.audit_root(task, 1)
            proxy.start()
            expect(banner).to_be_hidden(timeout=WAIT_MS)
            expect(page.locator("#audit-counts")).to_contain_text(
                "2 audit batches", timeout=WAIT_MS
            )
    finally:
        proxy.stop()
