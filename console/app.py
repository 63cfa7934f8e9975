"""The operators' console: a small aiohttp app reading the ledger (read-only) and the workers' metrics.

Nothing here can change money:

* the ledger is opened read-only (see :func:`console.readmodel.make_readonly_engine`);
* only GET and HEAD routes exist; any other method is answered 401 by :func:`guard` unless
  it carries ``Authorization: Bearer <SUBSIDY_CONSOLE_ADMIN_TOKEN>``; a future admin action
  would sit behind that check (today such a request then gets 405: there are none).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection

import sqlalchemy as sa
from aiohttp import web

from console import metrics as console_metrics
from console.openapi import OUTCOMES, spec
from console.readmodel import ConsoleError, LedgerReader, shown_url
from console.streams import StreamScraper
from rules.policy import Policy, load_policy

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
ADMIN_TOKEN_ENV = "SUBSIDY_CONSOLE_ADMIN_TOKEN"
READ_METHODS = frozenset({"GET", "HEAD"})

READER = web.AppKey("reader", LedgerReader)
SCRAPER = web.AppKey("scraper", StreamScraper)
ADMIN_TOKEN = web.AppKey("admin_token", str)

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


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Read methods pass; anything else needs the admin bearer token (and there is no admin route yet)."""
    if request.method not in READ_METHODS:
        token = request.app[ADMIN_TOKEN]
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return web.json_response(
                {"error": "the console is read-only; a method other than GET/HEAD needs the admin bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="subsidy-console"'},
            )
    try:
        response = await handler(request)
    except web.HTTPException as error:
        response = error
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        raise
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


async def _read(request: web.Request, method: str, *args: Any, **kwargs: Any) -> web.Response:
    reader = request.app[READER]
    try:
        data = await asyncio.to_thread(getattr(reader, method), *args, **kwargs)
    except (sa.exc.SQLAlchemyError, ConsoleError) as error:
        first = str(getattr(error, "orig", None) or error).splitlines()[0] if str(error) else error.__class__.__name__
        log.warning("console: cannot read the ledger %s: %s", shown_url(reader.url), first)
        return _json({"error": f"cannot read the ledger {shown_url(reader.url)}: {first}"}, status=503)
    return _json(data)


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be a whole number"}), content_type="application/json") from None
    if not 1 <= value <= maximum:
        raise web.HTTPBadRequest(text=_dumps({"error": f"{name} must be between 1 and {maximum}"}), content_type="application/json")
    return value


def _one_of(request: web.Request, name: str, valid: Collection[str]) -> str | None:
    """A filter's value, or None when not given; a value that could match nothing is a mistake
    to say (400), not an empty list nor a database error."""
    raw = request.query.get(name)
    if raw is None or raw == "":
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


async def api_holds(request: web.Request) -> web.Response:
    return await _read(request, "held_payments", _int(request, "limit", 100, 1000))


async def api_streams(request: web.Request) -> web.Response:
    return _json(request.app[SCRAPER].report())


async def openapi_json(request: web.Request) -> web.Response:
    return _json(spec())


async def metrics(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(console_metrics.render, request.app[READER], request.app[SCRAPER])
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    return await _read(request, "health")


ROUTES: list[tuple[str, Callable]] = [
    ("/", index),
    ("/api/summary", api_summary),
    ("/api/budgets", api_budgets),
    ("/api/caps/nearest", api_caps_nearest),
    ("/api/decisions/recent", api_decisions_recent),
    ("/api/rejections", api_rejections),
    ("/api/holds", api_holds),
    ("/api/streams", api_streams),
    ("/openapi.json", openapi_json),
    ("/metrics", metrics),
    ("/healthz", healthz),
]


def build_console(
    ledger_url: str,
    policy: Policy | str | Path | None = None,
    worker_metrics_urls: list[str] | tuple[str, ...] = (),
    *,
    admin_token: str | None = None,
    scrape_interval: float = 5.0,
    today: dt.date | None = None,
) -> web.Application:
    """The console app.

    ``admin_token`` defaults to $SUBSIDY_CONSOLE_ADMIN_TOKEN (unset: no method other than GET/HEAD
    is ever let through). ``today`` fixes the date projections are made from (default: the
    current date in the policy's time zone), for replays of a past year and for tests.
    """
    if policy is None or isinstance(policy, (str, Path)):
        policy = load_policy(policy) if policy is not None else load_policy()
    app = web.Application(middlewares=[guard])
    app[READER] = LedgerReader(ledger_url, policy, today=today)
    app[SCRAPER] = StreamScraper(list(worker_metrics_urls or []), interval=scrape_interval)
    app[ADMIN_TOKEN] = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")
    for path, handler in ROUTES:
        app.router.add_get(path, handler)  # add_get also answers HEAD
    app.router.add_static("/static/", STATIC_DIR, show_index=False, append_version=False)

    async def lifecycle(app: web.Application):
        await app[SCRAPER].start()
        yield
        await app[SCRAPER].stop()
        app[READER].close()

    app.cleanup_ctx.append(lifecycle)
    return app
