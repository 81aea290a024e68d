"""The review inbox's web app: FastAPI, server-rendered Jinja2 pages, a signed session cookie,
a CSRF token on every form. Build with :func:`create_app`; ``thumbloop review`` runs it.

Pages: ``/login``, ``/`` (the inbox), ``/groups/{key}`` (one group's messages), ``/history``
(the action log), ``/dashboard`` and its CSVs (``learning.review.dashboard_page``); forms post
to ``/login``, ``/logout`` and ``/actions``. Database work runs in
the thread pool; the group index is brought up to date at start and every
``review_sync_interval_s`` (``learning.review.index``)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from learning.review.actions import ActionError, apply_action, recent_labels, resolve
from learning.review.dashboard_page import add_dashboard
from learning.review.filters import PLATFORMS, SIGNALS, Filters
from learning.review.inbox import (
    PAGE_SIZE,
    Group,
    group_members,
    groups_page,
    history,
    model_versions,
)
from learning.review.index import sync
from learning.review.redact import redact
from learning.review.security import (
    HEADERS,
    FormError,
    csrf_ok,
    csrf_token,
    parse_form,
    session_secret,
)
from learning.review.throttle import LoginThrottle, in_words, retry_after
from learning.review.users import UserStore, users_file
from thumbloop.domain import load_domain
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
GROUP_KEY = re.compile(r"^[A-Za-z0-9:_-]{1,64}$")
VERBS = {
    "confirm": "Confirmed",
    "relabel": "Relabelled",
    "out_of_scope": "Marked out of scope",
    "ignore": "Ignored",
}


@dataclass
class Inbox:
    """What the routes share: settings, database, reviewers, the domain's intents."""

    settings: Settings
    engine: Engine
    users: UserStore
    intents: list[str]
    out_of_scope: str | None
    throttle: LoginThrottle
    ready: bool = False

    @property
    def threshold(self) -> float:
        return self.settings.review.review_low_confidence

    def picks(self, group: Group, recent: list[str]) -> list[str]:
        """The labels keys 1-9 choose for a group: its predicted intents (most frequent first:
        key 1 confirms), those users picked after a 👎 (most picked first), those its
        clarifying reply offered, the reviewer's recent labels."""
        known, out = set(self.intents), list[str]()
        predicted = [i for i, _ in group.intents.most_common()]
        users = [i for i, _ in group.picked.most_common()]
        for name in [*predicted, *users, *group.offered, *recent]:
            if name in known and name != self.out_of_scope and name not in out:
                out.append(name)
        return out[:9]


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["redact"] = redact
    templates.env.filters["when"] = _when
    templates.env.filters["pct"] = lambda x: f"{100 * x:.0f}%"
    return templates


class Routes:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.templates = _templates()

    # --- helpers -------------------------------------------------------------------------

    def reviewer(self, request: Request) -> str | None:
        """The logged-in reviewer, while the name is still a reviewer (removing a user from the
        file ends that user's sessions)."""
        name = request.session.get("user")
        return name if isinstance(name, str) and self.inbox.users.exists(name) else None

    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        flash = request.session.pop("flash", None)
        base = {
            "reviewer": self.reviewer(request),
            "csrf": csrf_token(request.session),
            "flash": flash,
            "intents": self.inbox.intents,
        }
        response = self.templates.TemplateResponse(request, name, base | ctx, status_code=status)
        response.headers["cache-control"] = "no-store"
        return response

    async def form(self, request: Request) -> dict[str, str]:
        return parse_form(request.headers.get("content-type", ""), await request.body())

    def refused(self, request: Request, status: int, text: str) -> Response:
        return self.render(request, "login.html", status=status, error=text)

    # --- pages ---------------------------------------------------------------------------

    async def healthz(self) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self) -> Response:
        return PlainTextResponse(
            "ready" if self.inbox.ready else "indexing", 200 if self.inbox.ready else 503
        )

    async def login_page(self, request: Request) -> Response:
        if self.reviewer(request):
            return RedirectResponse("/", 303)
        return self.render(request, "login.html")

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        if not csrf_ok(request.session, form):
            return self.refused(request, 403, "The form expired. Please try again.")
        name, password = form.get("name", "").strip(), form.get("password", "")
        address = request.client.host if request.client else ""
        throttle = self.inbox.throttle
        wait = throttle.admit(name, address)
        if wait > 0:
            # refused before any hash is checked: quick, and the same for names that do not exist
            log.warning("review: refused a login: too many failures")
            response = self.refused(
                request,
                429,
                "Too many failed logins for this name or from this address. "
                f"Try again in {in_words(wait)}.",
            )
            response.headers["retry-after"] = str(retry_after(wait))
            return response
        if not await run_in_threadpool(self.inbox.users.check, name, password):
            throttle.failed(name, address)
            log.info("review: refused a login")  # no name: the log must not list guesses
            return self.refused(request, 401, "Wrong name or password.")
        throttle.succeeded(name, address)
        request.session.clear()  # a fresh session and CSRF token for the reviewer
        request.session["user"] = name
        csrf_token(request.session)
        log.info("review: %s logged in", name)
        return RedirectResponse("/", 303)

    async def logout(self, request: Request) -> Response:
        form = await self.form(request)
        if csrf_ok(request.session, form):
            request.session.clear()
        return RedirectResponse("/login", 303)

    async def inbox_page(self, request: Request) -> Response:
        name = self.reviewer(request)
        if name is None:
            return RedirectResponse("/login", 303)
        f = Filters.parse(request.query_params)
        cursor = request.query_params.get("cursor", "0")
        cursor_at = min(int(cursor), PAGE_SIZE - 1) if cursor.isdigit() and len(cursor) < 4 else 0
        canonical = f.params() | ({"cursor": str(cursor_at)} if cursor_at else {})
        if sorted(request.query_params.multi_items()) != sorted(canonical.items()):
            # the filter form sends every field, empty or default: one short URL per view, to
            # bookmark and share
            return RedirectResponse("/?" + urlencode(canonical) if canonical else "/", 303)
        inbox = self.inbox
        page = await run_in_threadpool(groups_page, inbox.engine, f, inbox.threshold)
        models = await run_in_threadpool(model_versions, inbox.engine)
        recent = await run_in_threadpool(recent_labels, inbox.engine, name)
        return self.render(
            request,
            "inbox.html",
            f=f,
            page=page,
            picks={g.key: inbox.picks(g, recent) for g in page.groups},
            models=models,
            platforms=PLATFORMS,
            signals=SIGNALS,
            cursor=cursor_at,
            out_of_scope=inbox.out_of_scope,
            threshold=inbox.threshold,
        )

    async def group_page(self, request: Request) -> Response:
        name = self.reviewer(request)
        if name is None:
            return RedirectResponse("/login", 303)
        key = request.path_params["key"]
        if not GROUP_KEY.match(key):
            return PlainTextResponse("no such group", 404)
        f = Filters.parse(request.query_params)
        inbox = self.inbox
        group, members = await run_in_threadpool(
            group_members, inbox.engine, key, f, inbox.threshold
        )
        if group is None:
            return self.render(request, "group.html", status=404, f=f, group=None, members=[])
        recent = await run_in_threadpool(recent_labels, inbox.engine, name)
        return self.render(
            request,
            "group.html",
            f=f,
            group=group,
            members=members,
            picks=inbox.picks(group, recent),
            out_of_scope=inbox.out_of_scope,
        )

    async def history_page(self, request: Request) -> Response:
        if self.reviewer(request) is None:
            return RedirectResponse("/login", 303)
        rows = await run_in_threadpool(history, self.inbox.engine)
        return self.render(request, "history.html", rows=rows)

    async def act(self, request: Request) -> Response:
        form = await self.form(request)
        name = self.reviewer(request)
        if name is None:
            return self.refused(request, 401, "Please log in again.")
        if not csrf_ok(request.session, form):
            return PlainTextResponse("CSRF check failed: reload the page and try again.", 403)
        key = form.get("group", "")
        if not GROUP_KEY.match(key):
            return PlainTextResponse("no such group", 400)
        f = Filters.parse(dict(parse_qsl(form.get("filters", ""))))
        back = f.params()
        cursor = form.get("cursor", "0")
        if cursor.isdigit() and cursor != "0":
            back["cursor"] = cursor
        target = "/?" + urlencode(back) if back else "/"
        choice = "label" if form.get("pick") else form.get("action", "")
        inbox = self.inbox
        try:
            label = resolve(
                choice, form.get("pick") or form.get("label", ""), inbox.intents, inbox.out_of_scope
            )
        except ActionError as exc:
            request.session["flash"] = {"kind": "error", "text": str(exc)}
            return RedirectResponse(target, 303)
        done = await run_in_threadpool(
            apply_action, inbox.engine, name, key, f, inbox.threshold, label, inbox.out_of_scope
        )
        if done.count == 0:
            text = "Nothing left to review in that group (someone else may have done it)."
        else:
            what = f" as {done.label}" if done.action in ("confirm", "relabel") else ""
            plural = "s" if done.count != 1 else ""
            text = f"{VERBS[done.action]} {done.count} message{plural}{what}."
        request.session["flash"] = {"kind": "ok", "text": text}
        log.info(
            "review: %s %s %d messages (action %d)", name, done.action, done.count, done.action_id
        )
        return RedirectResponse(target, 303)


async def _form_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FormError)
    return PlainTextResponse(str(exc), exc.status)


async def _headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    users: UserStore | None = None,
    throttle: LoginThrottle | None = None,
) -> FastAPI:
    """The inbox on ``settings``' database (migrated: ``thumbloop db upgrade``) and domain;
    ``throttle`` limits failed logins (default: :class:`LoginThrottle`'s policies)."""
    domain = load_domain(settings.learning.domain_dir)
    own_engine = engine is None
    engine = engine or make_engine(settings.effective_database_url)
    users = users or UserStore(
        users_file(settings),
        s.get_secret_value() if (s := settings.review.review_users) else None,
    )
    oos = domain.out_of_scope if domain.out_of_scope in domain.intents else None
    inbox = Inbox(
        settings,
        engine,
        users,
        list(domain.intents),
        oos,
        throttle if throttle is not None else LoginThrottle(),
    )

    async def keep_indexing() -> None:
        while True:
            await asyncio.sleep(settings.review.review_sync_interval_s)
            try:
                await run_in_threadpool(sync, engine)
            except Exception:  # a busy or restarting database: try again next time
                log.exception("review: indexing new interactions failed")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        indexed, deleted, blanked = await run_in_threadpool(sync, engine)
        log.info(
            "review: indexed %d interactions (%d deleted, %d blanked)", indexed, deleted, blanked
        )
        inbox.ready = True
        task = asyncio.create_task(keep_indexing())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            if own_engine:
                engine.dispose()

    app = FastAPI(
        title="Thumbloop review", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    routes = Routes(inbox)
    app.state.inbox = inbox
    for path, endpoint, methods in (
        ("/healthz", routes.healthz, ["GET"]),
        ("/readyz", routes.readyz, ["GET"]),
        ("/login", routes.login_page, ["GET"]),
        ("/login", routes.login, ["POST"]),
        ("/logout", routes.logout, ["POST"]),
        ("/", routes.inbox_page, ["GET"]),
        ("/groups/{key}", routes.group_page, ["GET"]),
        ("/history", routes.history_page, ["GET"]),
        ("/actions", routes.act, ["POST"]),
    ):
        app.add_api_route(path, endpoint, methods=methods, include_in_schema=False)
    add_dashboard(app, engine, routes.reviewer, routes.render)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(FormError, _form_error)
    app.middleware("http")(_headers)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="thumbloop_review",
        max_age=settings.review.review_session_max_age_s,
        same_site="lax",
        https_only=settings.review.review_secure_cookie,
    )
    return app
