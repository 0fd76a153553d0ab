"""Fixtures for the console's browser tests: headless Debian Chromium (:mod:`tests.console.browser`), fresh
browser contexts that record what they saw, and a real control plane with the console
(:mod:`tests.console.fleet`). Devices (``make_daemon``) and cameras (``servers``) come from
:mod:`tests.support`."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.console.browser import CHROMIUM, Browsing
from tests.console.fleet import ConsoleControlPlane

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _unavailable(why: str) -> None:
    """Skip where the browser cannot run here; under CI (where scripts/test installs it) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium, one per test module (a launch takes seconds on a loaded machine)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the [test] extra installs it)")
    # expect() waits for its condition (5 s by default): a deadline, so the same 30 s as the contexts'
    # actions, which a loaded machine (scripts/test --stress) needs
    expect.set_options(timeout=30_000)
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is not installed (scripts/test installs Debian's chromium)")
    with sync_playwright() as pw:
        # chromium_sandbox=False (Playwright's default, said here on purpose) starts Chromium with
        # --no-sandbox: Chromium's own sandbox refuses to start as root, and the CI container runs the suite
        # as root. The only pages it opens are our console on loopback.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browsing(chromium: Browser, tmp_path: Path) -> Iterator[Callable[..., Browsing]]:
    """``browsing(viewport=(w, h))`` opens a fresh browser context (no cookies) that saves its screenshots in
    ``tmp_path/screenshots``; all are closed at the end of the test."""
    opened: list[Browsing] = []
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    steps = itertools.count(1)

    def open_one(viewport: tuple[int, int] = (1280, 800)) -> Browsing:
        # the control plane's certificate comes from its own CA, which this throw-away profile does not know
        context = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                       ignore_https_errors=True)
        context.set_default_timeout(30_000)
        one = Browsing(context, shots, steps)
        opened.append(one)
        return one

    yield open_one
    for one in opened:
        one.context.close()


@pytest.fixture
def console_cp(tmp_path: Path) -> Iterator[ConsoleControlPlane]:
    """A control plane serving the console, started; stopped at the end of the test."""
    cp = ConsoleControlPlane(tmp_path / "control-plane").start()
    yield cp
    cp.stop()
