"""The console's web layer, shared by the control-plane and the device console: templates, static files,
sessions, CSRF, the read-only rule, and the pages both consoles have (sign-in, instances, logs, pause/resume,
preview).

:class:`Console` registers routes under ``/console/`` on an aiohttp application and wraps every handler: no
session → the sign-in page (with "Your session expired" when it did); every POST → the session's CSRF
token; a request that changes state with a read-only key → 403 "This access key is read-only". A
:class:`Backend` supplies the data (``console.plane`` for a control plane, ``console.device`` for a daemon).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web

from panoflow.console.sessions import COOKIE, DEFAULT_TTL_S, Session, SessionStore

__all__ = ["ROOT", "Backend", "Console", "ConsoleError", "InstanceView", "NodeView", "Page", "redirect"]

log = structlog.get_logger("panoflow.console")

ROOT = "/console/"
_SIGN_IN_COOKIE = "panoflow_console_signin"  # double-submit token of the sign-in form (no session yet)
CSRF_FAILED = ("This form is out of date or was not sent by the console (CSRF check failed): reload the page "
               "and try again.")
READ_ONLY = ("This access key is read-only: it may look but not change anything (a key made by `keys create` "
             "without --read-only may).")
EXPIRED = "Your session expired. Sign in again."
#: failed sign-ins allowed per client address within :data:`FAILURE_WINDOW_S` before it must wait
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
_KEY_ID = re.compile(r"[A-Z0-9]{16,32}")  # the shape of access key ids (PFAK... and AKIA...)
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


class ConsoleError(Exception):
    """A message for the person at the console (shown on the page, never a traceback); ``field`` names the
    form field it is about."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class NodeView:
    """A node instance as the console shows it."""

    id: str
    name: str
    package: str
    status: str
    is_camera: bool


@dataclass(frozen=True)
class InstanceView:
    """An application instance as the console shows it (both consoles)."""

    id: str
    name: str
    status: str
    health: str
    description: str = ""
    device_id: str = ""
    device_name: str = ""
    created: str = ""
    nodes: tuple[NodeView, ...] = field(default=())


class Backend(Protocol):
    """Where a console's data comes from."""

    kind: str  # "plane" or "device"
    nav: tuple[tuple[str, str], ...]  # (path under /console/, label)

    async def sign_in(self, form: dict[str, str]) -> tuple[str, bool] | None:
        """``(principal, read_only)`` for good credentials in the sign-in form, else None."""

    async def instances(self) -> list[InstanceView]:
        """Every application instance."""

    async def instance(self, instance_id: str) -> InstanceView:
        """One instance with its nodes (ConsoleError 404 when unknown)."""

    async def signal(self, session: Session, instance_id: str, node: str, signal: str) -> None:
        """Pause or resume a node (``PAUSE`` / ``RESUME``)."""

    async def logs(self, instance_id: str, node: str | None, limit: int) -> list[str]:
        """The newest ``limit`` log lines of an instance (or one of its nodes), oldest first."""

    async def preview(self, request: web.Request, instance: InstanceView) -> dict[str, Any]:
        """What the preview page shows (template variables)."""


@dataclass
class Page:
    """A template and its variables, rendered by :meth:`Console.render`."""

    template: str
    title: str
    vars: dict[str, Any] = field(default_factory=dict)
    status: int = 200


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("panoflow.console", "templates"),
                             autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


class Console:
    """One console mounted on one aiohttp application."""

    def __init__(self, backend: Backend, *, session_ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """``session_ttl_s``: how long a sign-in lasts (8 hours by default); ``clock``: the sessions' clock
        (tests move it forward instead of waiting)."""
        self.backend = backend
        self.sessions = SessionStore(session_ttl_s or DEFAULT_TTL_S, clock)
        self._failures: dict[str, deque[float]] = {}  # client address -> times of its failed sign-ins
        self.env = _environment()
        self._static = {name: (resources.files("panoflow.console") / "static" / name).read_bytes()
                        for name in ("htmx.min.js", "console.css")}

    # ------------------------------------------------------------------ plumbing
    def mount(self, app: web.Application) -> None:
        """Add the shared routes (the backend's module adds its own with :meth:`add`)."""
        app.router.add_get("/console", self._root)
        app.router.add_get(ROOT + "static/{name}", self._static_file)
        app.router.add_get(ROOT + "sign-in", self._sign_in_page)
        app.router.add_post(ROOT + "sign-in", self._sign_in)
        app.router.add_post(ROOT + "sign-out", self._sign_out)
        self.add(app, "GET", "", self._home)
        self.add(app, "GET", "instances", self._instances)
        self.add(app, "GET", "instances/{id}", self._instance)
        self.add(app, "GET", "instances/{id}/live", self._instance_live)
        self.add(app, "POST", "instances/{id}/nodes/{node}/pause", self._pause, write=True)
        self.add(app, "POST", "instances/{id}/nodes/{node}/resume", self._resume, write=True)
        self.add(app, "GET", "instances/{id}/logs", self._logs)
        self.add(app, "GET", "instances/{id}/logs/lines", self._log_lines)
        self.add(app, "GET", "instances/{id}/preview", self._preview)

    def add(self, app: web.Application, method: str, path: str, handler: Handler, *,
            write: bool = False) -> None:
        """Route ``ROOT + path`` to ``handler(request, session)`` behind the session, CSRF and read-only
        checks (``write``: a read-only key may not use it)."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            lookup = self.sessions.get(request.cookies.get(COOKIE))
            if lookup.session is None:
                target = ROOT + "sign-in" + ("?expired=1" if lookup.expired else "")
                if request.headers.get("HX-Request"):
                    return web.Response(status=200, headers={"HX-Redirect": target})
                return redirect(target)
            session = lookup.session
            try:
                if request.method == "POST":
                    form = await request.post()
                    token = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
                    if not session.check_csrf(token if isinstance(token, str) else None):
                        return self._refused(request, session, CSRF_FAILED)
                if write and session.read_only:
                    return self._refused(request, session, READ_ONLY)
                return await handler(request, session)
            except ConsoleError as exc:
                if request.headers.get("HX-Request"):
                    return self._hx_message(request, session, str(exc), exc.status)
                page = Page("message.html", "Something went wrong" if exc.status >= 500 else "Not done",
                            {"back": request.headers.get("Referer", "").startswith(self._origin(request))
                             and request.headers["Referer"] or None}, status=exc.status)
                return self.render(request, session, page, messages=[("error", str(exc))])
            except Exception as exc:  # a bug in panoflow: a page that says so, never a traceback
                log.exception("console_internal_error", method=request.method, path=request.path,
                              error=type(exc).__name__)
                page = Page("message.html", "Something went wrong", status=500)
                text = (f"Internal error ({type(exc).__name__}): this is a bug in panoflow, logged on the "
                        "server.")
                return self.render(request, session, page, messages=[("error", text)])

        app.router.add_route(method, ROOT + path, wrapped)

    def _refused(self, request: web.Request, session: Session, message: str) -> web.Response:
        if request.headers.get("HX-Request"):
            return self._hx_message(request, session, message, 403)
        return self.render(request, session, Page("message.html", "Request refused", status=403),
                           messages=[("error", message)])

    def _hx_message(self, request: web.Request, session: Session, message: str, status: int) -> web.Response:
        """An error for an htmx request: the message goes into the page's ``#messages`` (htmx is configured to
        swap error answers too, so a refused click says why)."""
        response = self.render(request, session, Page("messages.html", "", {"status": status}, status=status),
                               messages=[("error", message)], fragment=True)
        response.headers.update({"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"})
        return response

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}/"

    def render(self, request: web.Request, session: Session | None, page: Page, *,
               messages: list[tuple[str, str]] | None = None, fragment: bool = False) -> web.Response:
        """Render ``page`` (a full page, or a ``fragment`` template without the layout)."""
        flashes = session.take_flashes() if session is not None and not fragment else []
        variables = {"title": page.title, "root": ROOT, "session": session, "kind": self.backend.kind,
                     "nav": self.backend.nav, "write_pages": ("deploy",),
                     "current": request.path[len(ROOT):].split("/", 1)[0],
                     "messages": flashes + (messages or []), **page.vars}
        text = self.env.get_template(page.template).render(variables)
        return web.Response(text=text, content_type="text/html", charset="utf-8", status=page.status,
                            headers=_security_headers())

    def fragment(self, request: web.Request, session: Session, template: str,
                 **variables: Any) -> web.Response:
        """An htmx fragment."""
        return self.render(request, session, Page(template, "", variables), fragment=True)

    # ------------------------------------------------------------------ static and sign-in
    async def _root(self, _request: web.Request) -> web.Response:
        return redirect(ROOT)

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=_STATIC_TYPES[name[name.rfind("."):]], charset="utf-8",
                            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

    def _sign_in_form(self, request: web.Request, messages: list[tuple[str, str]], status: int = 200,
                      access_key_id: str = "") -> web.Response:
        token = secrets.token_urlsafe(32)
        page = Page("sign_in.html", "Sign in", {"access_key_id": access_key_id, "sign_in_token": token},
                    status=status)
        response = self.render(request, None, page, messages=messages)
        response.set_cookie(_SIGN_IN_COOKIE, token, path=ROOT, httponly=True, samesite="Strict",
                            secure=request.secure or None)
        return response

    async def _sign_in_page(self, request: web.Request) -> web.Response:
        messages: list[tuple[str, str]] = []
        if request.query.get("expired"):
            messages.append(("error", EXPIRED))
        if request.query.get("signed_out"):
            messages.append(("ok", "You signed out."))
        return self._sign_in_form(request, messages)

    async def _sign_in(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        expected = request.cookies.get(_SIGN_IN_COOKIE, "")
        if not expected or not secrets.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
            return self._sign_in_form(request, [("error", CSRF_FAILED)], status=403)
        client = request.remote or ""
        recent = self._failures.setdefault(client, deque(maxlen=MAX_FAILURES))
        while recent and recent[0] < time.monotonic() - FAILURE_WINDOW_S:
            recent.popleft()
        if len(recent) >= MAX_FAILURES:
            wait = f"Too many failed sign-ins from {client}: wait a minute, then try again."
            return self._sign_in_form(request, [("error", wait)], status=429)
        who = await self.backend.sign_in(form)
        if who is None:
            recent.append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded: the oldest addresses go first
                del self._failures[next(iter(self._failures))]
            typed = form.get("access_key_id", "").strip()
            # only something shaped like a key id is logged: a secret pasted into the wrong field is not
            log.info("console_sign_in_failed", kind=self.backend.kind, client=client,
                     access_key_id=typed if _KEY_ID.fullmatch(typed) else None)
            wrong = "Wrong API token." if self.backend.kind == "device" else \
                "Wrong access key ID or secret access key."
            return self._sign_in_form(request, [("error", wrong)], status=401,
                                      access_key_id=form.get("access_key_id", "")[:64])
        principal, read_only = who
        session = self.sessions.create(principal, read_only=read_only)
        log.info("console_sign_in", kind=self.backend.kind, principal=principal, read_only=read_only)
        response = redirect(ROOT + "instances")
        response.set_cookie(COOKIE, session.id, path=ROOT, httponly=True, samesite="Strict",
                            secure=request.secure or None)  # no Max-Age: the server ends it (and says so)
        response.del_cookie(_SIGN_IN_COOKIE, path=ROOT)
        return response

    async def _sign_out(self, request: web.Request) -> web.Response:
        lookup = self.sessions.get(request.cookies.get(COOKIE))
        if lookup.session is not None:
            form = await request.post()
            token = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
            if not lookup.session.check_csrf(token if isinstance(token, str) else None):
                return self._refused(request, lookup.session, CSRF_FAILED)
            self.sessions.end(lookup.session.id)
        response = redirect(ROOT + "sign-in?signed_out=1")
        response.del_cookie(COOKIE, path=ROOT)
        return response

    # ------------------------------------------------------------------ shared pages
    async def _home(self, _request: web.Request, _session: Session) -> web.StreamResponse:
        return redirect(ROOT + "instances")

    async def _instances(self, request: web.Request, session: Session) -> web.StreamResponse:
        items = await self.backend.instances()
        page = Page("instances.html", "Application instances", {"instances": items})
        return self.render(request, session, page)

    async def _instance(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.backend.instance(request.match_info["id"])
        return self.render(request, session, Page("instance.html", inst.name or inst.id, {"inst": inst}))

    async def _instance_live(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.backend.instance(request.match_info["id"])
        return self.fragment(request, session, "instance_live.html", inst=inst)

    async def _signal(self, request: web.Request, session: Session, signal: str) -> web.StreamResponse:
        instance_id, node = request.match_info["id"], request.match_info["node"]
        await self.backend.signal(session, instance_id, node, signal)
        verb = "Paused" if signal == "PAUSE" else "Resumed"
        if request.headers.get("HX-Request"):
            inst = await self.backend.instance(instance_id)
            return self.fragment(request, session, "instance_live.html", inst=inst,
                                 live_message=f"{verb} {node}.")
        session.flash("ok", f"{verb} {node}.")
        return redirect(ROOT + f"instances/{quote(instance_id, safe='')}")

    async def _pause(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._signal(request, session, "PAUSE")

    async def _resume(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._signal(request, session, "RESUME")

    async def _logs(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.backend.instance(request.match_info["id"])
        node = _node_param(request, inst)
        lines = await self.backend.logs(inst.id, node, 200)
        follow = "1" in request.query.getall("follow", ["1"])  # the form sends 0, and 1 when ticked
        return self.render(request, session, Page("logs.html", f"Logs of {inst.name or inst.id}",
                                                  {"inst": inst, "node": node or "", "lines": lines,
                                                   "follow": follow}))

    async def _log_lines(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.backend.instance(request.match_info["id"])
        lines = await self.backend.logs(inst.id, _node_param(request, inst), 200)
        return self.fragment(request, session, "log_lines.html", lines=lines)

    async def _preview(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.backend.instance(request.match_info["id"])
        variables = await self.backend.preview(request, inst)
        return self.render(request, session, Page("preview.html", f"Live preview of {inst.name or inst.id}",
                                                  {"inst": inst, **variables}))


def _node_param(request: web.Request, inst: InstanceView) -> str | None:
    node = request.query.get("node") or None
    if node is not None and node not in {n.name for n in inst.nodes} | {n.id for n in inst.nodes}:
        raise ConsoleError(f"node: this instance has no node {node[:64]!r}", field="node")
    return node


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **_security_headers()})


def _security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
