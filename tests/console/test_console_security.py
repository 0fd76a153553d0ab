"""The console's refusals, cookies and basic accessibility, in headless Chromium against a real
``panoflow control-plane serve`` process (HTTPS): a wrong key, an expired session, a read-only key's forged
POST, POSTs without or with a wrong CSRF token, the session cookie's flags, a phone-sized viewport and the
keyboard.

One control plane serves the module (starting one costs seconds on the loaded machine); the expiry test starts
its own with a short session lifetime.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.console.browser import Browsing
from tests.console.fleet import ConsoleControlPlane

CSRF_FAILED = "CSRF check failed"
READ_ONLY = "This access key is read-only"
WRONG_KEY = "Wrong access key ID or secret access key."
EXPIRED = "Your session expired. Sign in again."
#: the expiry test's session lifetime (s): long enough to sign in and load a page on the loaded machine
SHORT_TTL_S = 8.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleControlPlane]:
    root = tmp_path_factory.mktemp("console-security")
    cp = ConsoleControlPlane(root / "control-plane", cli_key=False).start()
    yield cp
    cp.stop()


def sign_in(web: Browsing, cp: ConsoleControlPlane, key: dict[str, str]) -> None:
    """Sign in through the form and land on the instances page."""
    from playwright.sync_api import expect

    web.page.goto(cp.console + "sign-in")
    web.page.get_by_label("Access key ID").fill(key["AccessKeyId"])
    web.page.get_by_label("Secret access key").fill(key["SecretAccessKey"])
    web.page.get_by_role("button", name="Sign in").click()
    expect(web.page).to_have_url(re.compile(r"/console/instances$"))


def forge_post(web: Browsing, action: str, fields: dict[str, str]) -> None:
    """Submit a form the console never rendered (as another page could) from the current page: the browser
    navigates to the answer."""
    web.page.evaluate("""([action, fields]) => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value;
            form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
    }""", [action, fields])
    web.page.wait_for_load_state()


def csrf_token(web: Browsing) -> str:
    """The session's CSRF token, as the console's own forms carry it (the sign-out form's hidden field)."""
    return str(web.page.locator("#sign-out-form input[name=csrf_token]").get_attribute("value"))


def camera_fields(name: str) -> dict[str, str]:
    """The add-camera form's fields."""
    return {"name": name, "url": "rtsp://127.0.0.1:9/cam", "username": "u", "password": "pw-x"}


def cameras(cp: ConsoleControlPlane) -> set[str]:
    return {n["PackageName"] for n in cp.pano.list_nodes(Category="MEDIA_SOURCE")["Nodes"]}


def test_a_wrong_key_is_refused_on_the_sign_in_page(plane: ConsoleControlPlane,
                                                     browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    web = browsing()
    page = web.page
    wrong = plane.key["SecretAccessKey"][::-1]
    attempts = ((plane.key["AccessKeyId"], wrong), ("AKIAUNKNOWNKEY000000", plane.key["SecretAccessKey"]))
    for key_id, secret in attempts:
        page.goto(plane.console)
        page.get_by_label("Access key ID").fill(key_id)
        page.get_by_label("Secret access key").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#messages .message.error")).to_have_text(WRONG_KEY)
        expect(page.locator("#sign-in")).to_be_visible()
        expect(page.get_by_label("Secret access key")).to_have_value("")  # never filled in again
        web.shot("wrong-key")
    assert "panoflow_console" not in {c["name"] for c in web.context.cookies()}
    page.goto(plane.console + "instances")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    assert web.leaks([wrong, plane.key["SecretAccessKey"]]) == []


def test_an_expired_session_returns_to_sign_in_with_a_message(tmp_path: Path,
                                                                browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    cp = ConsoleControlPlane(tmp_path / "control-plane",
                             env={"PANOFLOW_CONSOLE_SESSION_TTL_S": str(SHORT_TTL_S)}, cli_key=False).start()
    try:
        web = browsing()
        sign_in(web, cp, cp.key)
        signed_in = time.monotonic()  # the server made the session before this
        expect(web.page.locator("#sign-out")).to_be_visible()
        time.sleep(max(0.0, signed_in + SHORT_TTL_S + 0.5 - time.monotonic()))
        web.page.locator("#nav").get_by_role("link", name="Cameras").click()
        expect(web.page).to_have_url(re.compile(r"/console/sign-in"))
        expect(web.page.locator("#messages .message.error")).to_have_text(EXPIRED)
        web.shot("session-expired")
        # signing in again works
        sign_in(web, cp, cp.key)
    finally:
        cp.stop()


def test_a_read_only_key_sees_no_controls_and_its_forged_posts_are_refused(
        plane: ConsoleControlPlane, browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    web = browsing()
    page = web.page
    sign_in(web, plane, plane.read_only_key)
    expect(page.locator("#read-only-note")).to_have_text("Signed in with a read-only key")
    expect(page.locator("#deploy-link")).to_have_count(0)
    expect(page.locator("#nav").get_by_role("link", name="Deploy")).to_have_count(0)
    page.locator("#nav").get_by_role("link", name="Cameras").click()
    expect(page.locator("#cameras")).to_be_visible()
    expect(page.locator("#add-camera")).to_have_count(0)
    web.shot("read-only-cameras")
    page.goto(plane.console + "deploy")
    expect(page.locator("#deploy-button")).to_have_count(0)
    expect(page.locator("#deploy-next")).to_have_count(0)
    # the same POSTs the console's own forms send, with the session's valid CSRF token
    page.goto(plane.console + "cameras")
    token = csrf_token(web)
    forge_post(web, plane.console + "cameras", {"csrf_token": token, **camera_fields("forged_cam")})
    expect(page.locator("#messages .message.error")).to_contain_text(READ_ONLY)
    web.shot("read-only-refused")
    forge_post(web, plane.console + "deploy", {"csrf_token": token, "device": "device-x", "name": "forged",
                                               "manifest": "{}"})
    expect(page.locator("#messages .message.error")).to_contain_text(READ_ONLY)
    assert "forged_cam" not in cameras(plane)
    assert plane.pano.list_application_instances()["ApplicationInstances"] == []
    # the refusal's status is 403 (the page says why; the API client sees it too)
    answer = web.context.request.post(plane.console + "cameras", form={"csrf_token": token,
                                                                        **camera_fields("forged_cam")})
    assert answer.status == 403 and READ_ONLY in answer.text()


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(plane: ConsoleControlPlane,
                                                                browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    web = browsing()
    page = web.page
    sign_in(web, plane, plane.key)
    page.locator("#nav").get_by_role("link", name="Cameras").click()
    token = csrf_token(web)
    for fields in ({}, {"csrf_token": token[::-1]}, {"csrf_token": ""}):
        page.goto(plane.console + "cameras")
        forge_post(web, plane.console + "cameras", {**fields, **camera_fields("csrf_cam")})
        expect(page.locator("#messages .message.error")).to_contain_text(CSRF_FAILED)
    web.shot("csrf-refused")
    for path in ("cameras", "sign-out", "instances/none/nodes/camera_node/pause"):
        answer = web.context.request.post(plane.console + path, form={"csrf_token": "x" * 43},
                                          max_redirects=0)
        assert answer.status == 403, (path, answer.status)
    assert "csrf_cam" not in cameras(plane)
    # the session survived the refused sign-out; the real token works
    page.goto(plane.console + "instances")
    expect(page.locator("#sign-out")).to_be_visible()


def test_the_session_cookie_is_httponly_strict_and_secure(plane: ConsoleControlPlane,
                                                          browsing: Callable[..., Browsing]) -> None:
    web = browsing()
    sign_in(web, plane, plane.key)
    cookie = web.cookie("panoflow_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is True  # the control plane serves HTTPS
    assert cookie["path"] == "/console/"
    assert len(cookie["value"]) >= 40  # 256 random bits
    assert cookie["value"] not in web.page.evaluate("document.cookie")  # no script reads it
    # a page is not cached, not framed, and runs under a strict Content-Security-Policy
    answer = web.context.request.get(plane.console + "instances")
    assert answer.status == 200
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    assert web.leaks([cookie["value"]], set_cookie=False) == []  # the session id is nowhere but in Set-Cookie
    assert any(cookie["value"] in text for text in web.set_cookies)


def test_a_phone_sized_viewport_has_no_horizontal_scroll(plane: ConsoleControlPlane,
                                                         browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    web = browsing(viewport=(375, 812))
    web.page.goto(plane.console)
    assert web.horizontal_overflow() == 0
    sign_in(web, plane, plane.key)
    for link in ("Application instances", "Devices", "Cameras", "Packages", "Deploy"):
        web.page.locator("#nav").get_by_role("link", name=link).click()
        expect(web.page.locator("#main h1")).to_be_visible()
        assert web.horizontal_overflow() == 0, link
        web.shot(f"phone-{link.split()[0].lower()}")


def test_the_keyboard_reaches_the_sign_in_fields_in_order(plane: ConsoleControlPlane,
                                                          browsing: Callable[..., Browsing]) -> None:
    from playwright.sync_api import expect

    web = browsing()
    page = web.page
    page.goto(plane.console + "sign-in")
    order = web.tab_order(6)
    assert "access-key-id" in order, order
    first = order.index("access-key-id")
    assert order[first:first + 3] == ["access-key-id", "secret-access-key", "sign-in-button"], order
    # signing in with the keyboard alone
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "access-key-id":
            break
    page.keyboard.type(plane.key["AccessKeyId"])
    page.keyboard.press("Tab")
    page.keyboard.type(plane.key["SecretAccessKey"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/instances$"))
    # the skip link is the first stop on every page and leads to the content
    web.tab_order(1)
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
