"""The operators' console: a small aiohttp app reading the ledger and the workers' metrics, and
recording what named operators do (console/users.py).

Nothing here can change money:

* the pages read the ledger through a read-only engine (:func:`console.readmodel.make_readonly_engine`);
* the writes are an operator's actions through ``writer_url``, the ledger's writer role on
  PostgreSQL: a hold on a payee or its release, appended to ``operator_actions`` and the hash
  chain, and a checker's approval of a payment batch (``Payments.approve_batch``, as
  ``subsidy payments approve`` records it);
* :func:`guard` lets a method other than GET/HEAD through only for a logged-in operator whose
  request repeats its session's CSRF token, or with ``Authorization: Bearer
  <SUBSIDY_CONSOLE_ADMIN_TOKEN>``, the break-glass admin, each use logged; once the ledger holds
  an operator, the data under /api/ needs a login too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Engine

from console import metrics as console_metrics
from console.openapi import OUTCOMES, TEXT_PATTERN, spec
from console.readmodel import ConsoleError, LedgerReader, shown_url
from console.sessions import COOKIE, CSRF_HEADER, SESSION_SECONDS, LoginLimiter, Session, Sessions
from console.streams import StreamScraper
from console.users import OPERATOR_KEY, Operator, record_action, require
from console.whatif import NOT_SAVED
from rules.policy import Policy, load_policy
from sinks.ledger import Ledger, PaymentRefused, make_engine
from sinks.ledger.payments import BatchState

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
ADMIN_TOKEN_ENV = "SUBSIDY_CONSOLE_ADMIN_TOKEN"
READ_METHODS = frozenset({"GET", "HEAD"})

READER = web.AppKey("reader", LedgerReader)
SCRAPER = web.AppKey("scraper", StreamScraper)
ADMIN_TOKEN = web.AppKey("admin_token", str)
WRITER_URL = web.AppKey("writer_url", str)
WRITER = web.AppKey("writer", dict)  # {"engine": Engine}, made at the first action
SESSIONS = web.AppKey("sessions", Sessions)
LIMITER = web.AppKey("limiter", LoginLimiter)
WHATIF = web.AppKey("whatif", dict)  # the saved what-if (console/whatif.py), or NOT_SAVED
# open without a login: the page and its login form (they hold no data), what tells the page
# whether to ask for one, and what monitoring scrapes (/api/streams shows what /metrics does)
OPEN_PATHS = frozenset({"/", "/login", "/api/login", "/api/session", "/api/streams", "/openapi.json", "/metrics", "/healthz"})
BREAK_GLASS = "break-glass"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, dumps=_dumps, headers=headers)


def _identify(request: web.Request) -> tuple[Operator | None, Session | None, web.Response | None]:
    """Who sends the request: the break-glass admin (bearer token), a session's operator, or nobody."""
    given = request.headers.get("Authorization")
    if given is not None:
        token = request.app[ADMIN_TOKEN]
        scheme, _, value = given.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            log.warning("console: a wrong admin token from %s for %s %s", request.remote, request.method, request.path)
            return None, None, _error(401, "wrong admin bearer token", {"WWW-Authenticate": 'Bearer realm="subsidy-console"'})
        log.warning("console: BREAK-GLASS admin token used from %s for %s %s", request.remote, request.method, request.path)
        return Operator(BREAK_GLASS, "admin", break_glass=True), None, None
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    return (session.operator if session else None), session, None


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Who may do what (see the module's docstring); every answer gets the security headers."""
    operator, session, refusal = _identify(request)
    request[OPERATOR_KEY] = operator
    if refusal is None and request.method not in READ_METHODS:
        if request.path == "/api/login":
            if request.content_type != "application/json":  # a cross-site form cannot send JSON without asking first
                refusal = _error(415, "send the login as application/json")
        elif operator is None:
            refusal = _error(401, "log in first (the console's actions need a named operator), or send the admin bearer token",
                             {"WWW-Authenticate": 'Bearer realm="subsidy-console"'})
        elif session is not None and not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()):
            refusal = _error(403, f"missing or wrong {CSRF_HEADER} header: repeat the csrf value of /api/session")
    elif refusal is None and operator is None and request.path not in OPEN_PATHS and not request.path.startswith("/static/"):
        try:
            if await _call(request, "login_required"):
                refusal = _error(401, "log in first: the ledger has named operators")
        except LedgerUnreadable as error:
            refusal = error.response
    if refusal is not None:
        response: web.StreamResponse = refusal
    else:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            for key, value in SECURITY_HEADERS.items():
                error.headers.setdefault(key, value)
            raise
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


class LedgerUnreadable(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.response = _json({"error": message}, status=503)


async def _call(request: web.Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """``method`` of the ledger reader, in a thread; LedgerUnreadable (a 503 answer) when the ledger cannot be read."""
    reader = request.app[READER]
    try:
        return await asyncio.to_thread(getattr(reader, method), *args, **kwargs)
    except (sa.exc.SQLAlchemyError, ConsoleError) as error:
        first = str(getattr(error, "orig", None) or error).splitlines()[0] if str(error) else error.__class__.__name__
        log.warning("console: cannot read the ledger %s: %s", shown_url(reader.url), first)
        raise LedgerUnreadable(f"cannot read the ledger {shown_url(reader.url)}: {first}") from None


async def _read(request: web.Request, method: str, *args: Any, **kwargs: Any) -> web.Response:
    try:
        return _json(await _call(request, method, *args, **kwargs))
    except LedgerUnreadable as error:
        return error.response


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be a whole number"}), content_type="application/json") from None
    if not 1 <= value <= maximum:
        raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be between 1 and {maximum}"}), content_type="application/json")
    return value


def _one_of(request: web.Request, name: str, valid: Collection[str]) -> str | None:
    """A filter's value, or None when not given; a value that could match nothing (an empty one
    too) is a mistake to say (400), not an empty list nor a database error."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in valid:
        raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be one of: {', '.join(sorted(valid))}"}), content_type="application/json")
    return raw


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def api_summary(request: web.Request) -> web.Response:
    return await _read(request, "summary")


async def api_budgets(request: web.Request) -> web.Response:
    return await _read(request, "budgets")


async def api_caps_nearest(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "amount")
    if kind not in ("amount", "count", "all"):
        raise web.HTTPBadRequest(text=_dumps({"error": "kind must be amount, count or all"}), content_type="application/json")
    return await _read(request, "nearest_caps", _int(request, "limit", 20, 500), kind)


async def api_decisions_recent(request: web.Request) -> web.Response:
    outcome = _one_of(request, "outcome", OUTCOMES)
    clause = _one_of(request, "clause", request.app[READER].policy.clauses)
    return await _read(request, "recent_decisions", _int(request, "limit", 50, 500), outcome, clause)


async def api_rejections(request: web.Request) -> web.Response:
    return await _read(request, "rejections", _int(request, "examples", 3, 20))


async def api_held_payments(request: web.Request) -> web.Response:
    return await _read(request, "held_payments", _int(request, "limit", 100, 1000))


async def api_ledger_integrity(request: web.Request) -> web.Response:
    return await _read(request, "ledger_integrity")


async def api_payments(request: web.Request) -> web.Response:
    return await _read(request, "payments", _int(request, "limit", 50, 500))


async def api_payee_payments(request: web.Request) -> web.Response:
    payee_id = request.query.get("payee_id", "")
    if not 1 <= len(payee_id) <= 128 or not _encodable(payee_id) or not _TEXT.match(payee_id):
        return _error(400, "payee_id: the payee's id, 1 to 128 characters and no control character")
    try:
        found = await _call(request, "payee_payments", payee_id, _int(request, "limit", 200, 1000))
    except LedgerUnreadable as error:
        return error.response
    return _json(found) if found is not None else _error(404, f"no payee {payee_id} in the ledger")


async def api_streams(request: web.Request) -> web.Response:
    return _json(request.app[SCRAPER].report())


async def api_whatif(request: web.Request) -> web.Response:
    return _json(request.app[WHATIF])


async def openapi_json(request: web.Request) -> web.Response:
    return _json(spec(request.app[READER].policy.clauses))


async def metrics(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(console_metrics.render, request.app[READER], request.app[SCRAPER])
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    return await _read(request, "health")


# -- operators -----------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "login.html", headers={"Cache-Control": "no-cache"})


_TEXT = re.compile(TEXT_PATTERN)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _json_object(request: web.Request, fields: dict[str, int]) -> dict[str, str]:
    """The request's JSON object with ``fields`` (name: longest length), each a non-empty string
    without control characters (nor half of a surrogate pair, which no database can store); else
    a 400 naming what is wrong."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=_dumps({"error": f"send a JSON object with {', '.join(fields)}"}), content_type="application/json")
    out: dict[str, str] = {}
    for name, longest in fields.items():
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= longest or not _TEXT.match(value) or not _encodable(value):
            raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be text of 1 to {longest} characters, none a control character"}), content_type="application/json")
        out[name] = value
    return out


async def api_login(request: web.Request) -> web.Response:
    given = await _json_object(request, {"name": 64, "password": 1024})
    address = request.remote or "unknown"
    wait = request.app[LIMITER].wait_seconds(given["name"], address)
    if wait:
        return _error(429, f"too many failed logins for this user or from this address: try again in {wait} s", {"Retry-After": str(wait)})
    try:
        operator = await _call(request, "authenticate", given["name"], given["password"])
    except LedgerUnreadable as error:
        return error.response
    if operator is None:
        request.app[LIMITER].failed(given["name"], address)
        log.warning("console: failed login as %r from %s", given["name"], address)
        return _error(401, "wrong user name or password")
    session_id, session = request.app[SESSIONS].open(operator)
    log.info("console: %s (%s) logged in from %s", operator.name, operator.role, address)
    response = _json({"name": operator.name, "role": operator.role, "csrf": session.csrf})
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", path="/", max_age=SESSION_SECONDS, secure=request.secure)
    return response


async def api_logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = _json({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def api_session(request: web.Request) -> web.Response:
    operator = request[OPERATOR_KEY]
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    try:
        required = await _call(request, "login_required")
    except LedgerUnreadable as error:
        return error.response
    return _json({"login_required": required, "name": operator.name if operator else None, "role": operator.role if operator else None,
                  "csrf": session.csrf if session else None})


async def api_holds(request: web.Request) -> web.Response:
    return await _read(request, "holds")


def _writer(request: web.Request) -> Engine:
    writer = request.app[WRITER]
    if "engine" not in writer:
        writer["engine"] = make_engine(request.app[WRITER_URL], application_name="subsidy-console")
    return writer["engine"]


def _record(request: web.Request, action: str, subject: str, reason: str) -> dict[str, Any]:
    operator = request[OPERATOR_KEY]
    row = record_action(_writer(request), operator, action, subject, reason)
    log.info("console: %s (%s) %s %s: %s", operator.name, operator.role, action, subject, reason)
    return row


async def _act(request: web.Request, action: str, subject: str, reason: str) -> web.Response:
    try:
        row = await asyncio.to_thread(_record, request, action, subject, reason)
    except sa.exc.SQLAlchemyError as error:
        first = str(getattr(error, "orig", None) or error).splitlines()[0]
        log.warning("console: cannot record %s of %s: %s", action, subject, first)
        return _json({"error": f"cannot record the action in the ledger {shown_url(request.app[WRITER_URL])}: {first}"}, status=503)
    return _json({"action": row["action"], "payee_id": subject, "by": row["user_name"], "at": row["recorded_at"], "reason": row["reason"]})


async def _current_hold(request: web.Request, payee_id: str) -> dict[str, Any] | None:
    holds = (await _call(request, "holds"))["holds"]
    return next((hold for hold in holds if hold["payee_id"] == payee_id), None)


@require("maker")
async def api_hold(request: web.Request) -> web.Response:
    given = await _json_object(request, {"payee_id": 128, "reason": 500})
    try:
        if not await _call(request, "payee_known", given["payee_id"]):
            return _error(404, f"no payee {given['payee_id']} in the ledger")
        hold = await _current_hold(request, given["payee_id"])
    except LedgerUnreadable as error:
        return error.response
    if hold:
        return _error(409, f"payee {given['payee_id']} is on hold already, placed by {hold['placed_by']} at {hold['placed_at']}")
    return await _act(request, "hold", given["payee_id"], given["reason"])


@require("checker")
async def api_release(request: web.Request) -> web.Response:
    given = await _json_object(request, {"payee_id": 128, "reason": 500})
    try:
        hold = await _current_hold(request, given["payee_id"])
    except LedgerUnreadable as error:
        return error.response
    if hold is None:
        return _error(409, f"payee {given['payee_id']} is not on hold")
    if hold["placed_by"] == request[OPERATOR_KEY].name:
        return _error(403, f"{hold['placed_by']} placed this hold: another checker must release it (four eyes)")
    return await _act(request, "release", given["payee_id"], given["reason"])


class BatchUnknown(Exception):
    pass


def _approve(request: web.Request, batch_id: str) -> BatchState:
    """``subsidy payments approve`` as the operator, through the writer: the maker is refused
    here with the reason (403), every other refusal is the ledger's (PaymentRefused)."""
    ledger = Ledger(_writer(request))
    approver = request[OPERATOR_KEY].name
    try:
        state = ledger.batch(batch_id)
    except PaymentRefused:  # the one refusal of reading a batch: there is none of that id
        raise BatchUnknown from None
    if state.maker == approver:
        raise web.HTTPForbidden(text=_dumps({"error": f"{approver} proposed batch {batch_id} and may not approve it: another checker must (maker-checker)"}),
                                content_type="application/json")
    return ledger.approve_batch(batch_id, approver)


@require("checker")
async def api_approve_batch(request: web.Request) -> web.Response:
    batch_id = request.match_info["batch_id"]
    if not 1 <= len(batch_id) <= 35 or not _encodable(batch_id) or not _TEXT.match(batch_id):
        return _error(400, "batch_id: the batch's id (PBnnnnnn), 1 to 35 characters and no control character")
    try:
        state = await asyncio.to_thread(_approve, request, batch_id)
    except BatchUnknown:
        return _error(404, f"no batch {batch_id} in the ledger")
    except PaymentRefused as refusal:
        return _error(409, str(refusal))
    except sa.exc.SQLAlchemyError as error:
        first = str(getattr(error, "orig", None) or error).splitlines()[0]
        log.warning("console: cannot record the approval of %s: %s", batch_id, first)
        return _json({"error": f"cannot record the approval in the ledger {shown_url(request.app[WRITER_URL])}: {first}"}, status=503)
    operator = request[OPERATOR_KEY]
    log.info("console: %s (%s) approved batch %s", operator.name, operator.role, batch_id)
    return _json({"batch_id": state.batch_id, "status": state.status, "by": operator.name, "approvers": state.approvers,
                  "approvals_required": state.approvals_required})


ROUTES: list[tuple[str, Callable]] = [
    ("/", index),
    ("/login", login_page),
    ("/api/session", api_session),
    ("/api/held-payments", api_held_payments),
    ("/api/ledger-integrity", api_ledger_integrity),
    ("/api/payments", api_payments),
    ("/api/payee-payments", api_payee_payments),
    ("/api/summary", api_summary),
    ("/api/budgets", api_budgets),
    ("/api/caps/nearest", api_caps_nearest),
    ("/api/decisions/recent", api_decisions_recent),
    ("/api/rejections", api_rejections),
    ("/api/holds", api_holds),
    ("/api/streams", api_streams),
    ("/api/whatif", api_whatif),
    ("/openapi.json", openapi_json),
    ("/metrics", metrics),
    ("/healthz", healthz),
]
ACTIONS: list[tuple[str, Callable]] = [
    ("/api/login", api_login),
    ("/api/logout", api_logout),
    ("/api/holds", api_hold),
    ("/api/holds/release", api_release),
    ("/api/batches/{batch_id}/approve", api_approve_batch),
]


def build_console(
    ledger_url: str,
    policy: Policy | str | Path | None = None,
    worker_metrics_urls: list[str] | tuple[str, ...] = (),
    *,
    writer_url: str | None = None,
    admin_token: str | None = None,
    scrape_interval: float = 5.0,
    today: dt.date | None = None,
    whatif: dict[str, Any] | None = None,
) -> web.Application:
    """The console app.

    ``ledger_url`` is read (on PostgreSQL, best as the reader role); operators' actions are
    appended through ``writer_url`` (default ``ledger_url``; on PostgreSQL the writer role).
    ``admin_token`` defaults to $SUBSIDY_CONSOLE_ADMIN_TOKEN (unset: no break-glass admin).
    ``today`` fixes the date projections are made from (default: the current date in the
    policy's time zone), for replays of a past year and for tests. ``whatif``: a saved what-if
    (``console.whatif.load_saved_whatif``) that ``/api/whatif`` serves beside the burn-down.
    """
    if policy is None or isinstance(policy, (str, Path)):
        policy = load_policy(policy) if policy is not None else load_policy()
    app = web.Application(middlewares=[guard])
    app[READER] = LedgerReader(ledger_url, policy, today=today)
    app[SCRAPER] = StreamScraper(list(worker_metrics_urls or []), interval=scrape_interval)
    app[ADMIN_TOKEN] = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")
    app[WRITER_URL] = writer_url or ledger_url
    app[WRITER] = {}
    app[SESSIONS] = Sessions()
    app[LIMITER] = LoginLimiter()
    app[WHATIF] = whatif or NOT_SAVED
    for path, handler in ROUTES:
        app.router.add_get(path, handler)  # add_get also answers HEAD
    for path, handler in ACTIONS:
        app.router.add_post(path, handler)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, append_version=False)

    async def lifecycle(app: web.Application):
        await app[SCRAPER].start()
        yield
        await app[SCRAPER].stop()
        app[READER].close()
        if "engine" in app[WRITER]:
            app[WRITER]["engine"].dispose()

    app.cleanup_ctx.append(lifecycle)
    return app
