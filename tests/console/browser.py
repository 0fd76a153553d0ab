"""Headless Debian Chromium (``/usr/bin/chromium``) driven by Playwright for Python, and :class:`Browsing`:
one browser context and page that keeps what a person's browser saw (every console message, page error,
response header and body, the page source at each step) and saves a screenshot per step.

Playwright's own browser download (``playwright install``, from a CDN) is never used: the tests launch the
Debian package through ``executable_path``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
#: names a folder that gets a copy of every step's screenshot, as ``console-STEP.png`` (docs/console.md)
SCREENSHOTS_ENV = "PANOFLOW_CONSOLE_SCREENSHOTS"
#: responses that never end (the live preview, a followed log): their headers are kept, their bodies cannot be
STREAMING = ("multipart/x-mixed-replace", "text/event-stream")


class Browsing:
    """One browser context (its own cookies) and page; keeps every console message, page error, response
    header and readable response body, and the page source at each :meth:`shot`."""

    def __init__(self, context: BrowserContext, shots: Path, steps: Iterator[int]):
        self.context = context
        self.shots = shots
        self._steps = steps  # shared by the test's browsers: screenshots number in the order they were taken
        #: the screenshots this browser saved
        self.saved: list[Path] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        #: (where, text): response headers and bodies, page sources
        self.texts: list[tuple[str, str]] = []
        #: the Set-Cookie headers received (apart from the other headers: they carry the session id)
        self.set_cookies: list[str] = []
        #: "STATUS URL" of every answer 400 or above
        self.failed: list[str] = []
        #: responses whose body could not be read (the page had gone on)
        self.unread: list[str] = []
        context.on("requestfinished", self._finished)
        self.page: Page = context.new_page()
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _finished(self, request: Request) -> None:
        from playwright.sync_api import Error

        try:
            self._record(request)
        except Error as exc:  # the page or context closed under a request that was finishing
            self.unread.append(f"{request.url}: {exc}")

    def _record(self, request: Request) -> None:
        from playwright.sync_api import Error

        response = request.response()
        if response is None:
            return
        if response.status >= 400:
            self.failed.append(f"{response.status} {request.url}")
        headers = response.headers_array()
        self.set_cookies += [h["value"] for h in headers if h["name"].lower() == "set-cookie"]
        lines = "\n".join(f"{h['name']}: {h['value']}" for h in headers if h["name"].lower() != "set-cookie")
        self.texts.append((f"headers of {request.url}", lines))
        if (response.header_value("content-type") or "").startswith(STREAMING):
            return
        try:
            body = response.body()
        except Error as exc:  # a redirect has no body; a page that went on may take its bodies with it
            if not 300 <= response.status < 400:
                self.unread.append(f"{request.url}: {exc}")
            return
        self.texts.append((request.url, body.decode("utf-8", errors="replace")))

    def shot(self, name: str) -> Path:
        """Save the page as ``NN-name.png`` in the test's folder (and ``console-name.png`` in the folder
        ``$PANOFLOW_CONSOLE_SCREENSHOTS`` names, if set); keep its source."""
        path = self.shots / f"{next(self._steps):02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.saved.append(path)
        self.texts.append((f"page source at step {name}", self.page.content()))
        extra = os.environ.get(SCREENSHOTS_ENV)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / f"console-{name}.png")
        return path

    def leaks(self, secrets: list[str], *, set_cookie: bool = True) -> list[str]:
        """Where any of ``secrets`` appears: response headers and bodies, page sources, console messages (and
        Set-Cookie headers unless ``set_cookie`` is false)."""
        places = [*self.texts, *(("console", text) for text in self.console),
                  *(("page error", text) for text in self.errors),
                  *(("Set-Cookie", text) for text in (self.set_cookies if set_cookie else []))]
        return [f"{secret[:3]}... in {where}" for secret in secrets if secret
                for where, text in places if secret in text]

    def cookie(self, name_pattern: str) -> dict[str, Any]:
        """The one cookie whose name matches ``name_pattern``."""
        found = [c for c in self.context.cookies() if re.fullmatch(name_pattern, c["name"])]
        assert len(found) == 1, f"cookies: {[c['name'] for c in self.context.cookies()]}"
        return dict(found[0])

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: no horizontal scroll)."""
        return int(self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))

    def tab_order(self, presses: int) -> list[str]:
        """The ids (or tag names) of the elements that get the focus, pressing Tab ``presses`` times from the
        top of the page."""
        self.page.locator("body").focus()
        order = []
        for _ in range(presses):
            self.page.keyboard.press("Tab")
            order.append(self.page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        return order


def picture(locator: Locator) -> bytes:
    """What the element shows now, as PNG bytes (two equal pictures: nothing moved)."""
    return locator.screenshot(animations="disabled")
