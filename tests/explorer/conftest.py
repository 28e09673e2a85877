"""Fixtures: one consortium world on the embedded chain for the whole explorer suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from explorer_world import ExplorerWorld, build_explorer_world
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.testclient import TestClient

from chronoseal.explorer import create_app
from chronoseal.ledger import EmbeddedChain


@pytest.fixture(scope="session")
def world() -> ExplorerWorld:
    """Shared and never written to by tests (tests that add events build their own)."""
    return build_explorer_world(EmbeddedChain())


@pytest.fixture(scope="session")
def client(world: ExplorerWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.consortium), raise_server_exceptions=True) as c:
        yield c


@pytest.fixture
def fresh_world() -> ExplorerWorld:
    """A world of its own, for tests that post new events."""
    return build_explorer_world(EmbeddedChain(), batches=1)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium (scripts/chromium); skipped without it unless CI requires it."""
    path = os.environ.get("CHRONOSEAL_CHROMIUM")
    if not path:
        message = "Chromium is not configured: run scripts/chromium, set CHRONOSEAL_CHROMIUM"
        if os.environ.get("CHRONOSEAL_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()
