"""Operators with names and roles (console/users.py, console/sessions.py): a login guards the data
once the ledger has operators, sessions carry a CSRF token, logins are rate-limited, and each
hold and release is recorded with the operator's name in the hash chain, released only by another
checker; a checker approves a payment batch another operator proposed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from console.app import build_console
from console.sessions import MAX_FAILURES, LoginLimiter
from console.users import password_matches, role_of
from sinks.ledger import Ledger, make_engine
from sinks.ledger.schema import console_users, operator_actions

PASSWORD = "correct horse battery"  # of every operator of the staffed_ledger fixture


def session_of(app, work):
    async def main():
        async with TestClient(TestServer(app)) as client:
            return await work(client)

    return asyncio.run(main())


async def login(client, name: str, password: str = PASSWORD) -> str:
    client.session.cookie_jar.clear()
    response = await client.post("/api/login", json={"name": name, "password": password})
    assert response.status == 200, await response.text()
    return (await response.json())["csrf"]


async def post(client, path: str, csrf: str | None, body: dict) -> tuple[int, str]:
    response = await client.post(path, json=body, headers={"X-CSRF-Token": csrf} if csrf else {})
    return response.status, (await response.json())["error"] if response.status != 200 else (await response.json())["action"]


def test_the_data_needs_a_login_once_the_ledger_has_operators(staffed_ledger, policy):
    async def work(client):
        out = {"before": (await client.get("/api/summary")).status, "session": await (await client.get("/api/session")).json(),
               "page": (await client.get("/")).status, "health": (await client.get("/healthz")).status}
        wrong = await client.post("/api/login", json={"name": "mark", "password": "wrong password!"})
        out["wrong"] = (wrong.status, (await wrong.json())["error"])
        unknown = await client.post("/api/login", json={"name": "nobody", "password": PASSWORD})
        out["unknown"] = (unknown.status, (await unknown.json())["error"])
        out["form"] = (await client.post("/api/login", data={"name": "mark", "password": PASSWORD})).status
        right = await client.post("/api/login", json={"name": "mark", "password": PASSWORD})
        out["cookie"] = right.headers["Set-Cookie"]
        out["after"] = (await client.get("/api/summary")).status
        out["whoami"] = await (await client.get("/api/session")).json()
        return out

    out = session_of(build_console(staffed_ledger["url"], policy), work)
    assert out["before"] == 401 and out["session"] == {"login_required": True, "name": None, "role": None, "csrf": None}
    assert out["page"] == 200 and out["health"] == 200  # the page holds no data; it sends the browser to /login
    assert out["wrong"] == out["unknown"] == (401, "wrong user name or password")
    assert out["form"] == 415  # a cross-site form cannot log anyone in
    assert "HttpOnly" in out["cookie"] and "SameSite=Strict" in out["cookie"] and "Path=/" in out["cookie"]
    assert out["after"] == 200
    assert out["whoami"]["name"] == "mark" and out["whoami"]["role"] == "maker" and out["whoami"]["csrf"]


def test_roles_csrf_and_four_eyes_on_holds(staffed_ledger, policy):
    payee = staffed_ledger["payee"]
    hold = {"payee_id": payee, "reason": "bank account under review"}

    async def work(client):
        out = {}
        csrf = await login(client, "vera")
        out["viewer"] = await post(client, "/api/holds", csrf, hold)
        csrf = await login(client, "mark")
        out["no csrf"] = await post(client, "/api/holds", None, hold)
        out["wrong csrf"] = await post(client, "/api/holds", "x" * 43, hold)
        out["bad body"] = await post(client, "/api/holds", csrf, {"payee_id": "\x00", "reason": "r"})
        out["unknown payee"] = await post(client, "/api/holds", csrf, {"payee_id": "91510100NOSUCHPAYEE", "reason": "r"})
        out["maker holds"] = await post(client, "/api/holds", csrf, hold)
        out["again"] = await post(client, "/api/holds", csrf, hold)
        out["maker releases"] = await post(client, "/api/holds/release", csrf, hold)
        out["listed"] = (await (await client.get("/api/holds")).json())["holds"]
        csrf = await login(client, "chen")
        out["checker releases"] = await post(client, "/api/holds/release", csrf, {**hold, "reason": "account confirmed"})
        out["checker holds"] = await post(client, "/api/holds", csrf, hold)
        out["own release"] = await post(client, "/api/holds/release", csrf, hold)
        csrf = await login(client, "chao")
        out["other checker releases"] = await post(client, "/api/holds/release", csrf, hold)
        out["left"] = (await (await client.get("/api/holds")).json())["holds"]
        return out

    out = session_of(build_console(staffed_ledger["url"], policy), work)
    assert out["viewer"] == (403, "vera is a viewer: this needs the role maker or higher")
    assert out["no csrf"][0] == out["wrong csrf"][0] == 403 and "X-CSRF-Token" in out["no csrf"][1]
    assert out["bad body"] == (400, "payee_id must be text of 1 to 128 characters, none a control character")
    assert out["unknown payee"] == (404, "no payee 91510100NOSUCHPAYEE in the ledger")
    assert out["maker holds"] == (200, "hold")
    assert out["again"][0] == 409 and "placed by mark" in out["again"][1]
    assert out["maker releases"] == (403, "mark is a maker: this needs the role checker or higher")
    assert [(h["payee_id"], h["placed_by"]) for h in out["listed"]] == [(payee, "mark")]
    assert out["checker releases"] == out["other checker releases"] == (200, "release")
    assert out["checker holds"] == (200, "hold")
    assert out["own release"] == (403, "chen placed this hold: another checker must release it (four eyes)")
    assert out["left"] == []

    engine = make_engine(staffed_ledger["url"])
    try:
        with engine.connect() as conn:
            recorded = [(r.user_name, r.role, r.action, r.subject) for r in conn.execute(sa.select(operator_actions).order_by(operator_actions.c.recorded_at))]
            chained = conn.exec_driver_sql("SELECT actor FROM ledger_chain_events WHERE kind = 'operator-action' ORDER BY seq").scalars().all()
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                conn.execute(operator_actions.delete())
        problems = Ledger(engine).verify_chain()
    finally:
        engine.dispose()
    assert recorded == [("mark", "maker", "hold", payee), ("chen", "checker", "release", payee), ("chen", "checker", "hold", payee), ("chao", "checker", "release", payee)]
    assert chained == ["mark", "chen", "chen", "chao"]  # each action is an entry of the hash chain with the operator's name
    assert problems == []


def test_logins_are_rate_limited_per_user_and_per_address(staffed_ledger, policy):
    async def work(client):
        statuses = [(await client.post("/api/login", json={"name": "chen", "password": "guess number 1"})).status for _ in range(MAX_FAILURES)]
        refused = await client.post("/api/login", json={"name": "chen", "password": PASSWORD})  # even the right one, for now
        other_user = await client.post("/api/login", json={"name": "chao", "password": PASSWORD})  # same address
        return statuses, refused.status, (await refused.json())["error"], refused.headers.get("Retry-After"), other_user.status

    statuses, status, error, retry_after, other_user = session_of(build_console(staffed_ledger["url"], policy), work)
    assert statuses == [401] * MAX_FAILURES
    assert status == 429 and error.startswith("too many failed logins") and 0 < int(retry_after) <= 60
    assert other_user == 429


def test_the_limiter_forgets_failures_after_a_minute():
    now = [1000.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        limiter.failed("ann", "10.0.0.1")
    assert limiter.wait_seconds("ann", "10.0.0.2") == 60  # the user
    assert limiter.wait_seconds("bob", "10.0.0.1") == 60  # the address
    assert limiter.wait_seconds("bob", "10.0.0.2") == 0
    now[0] += 60.5
    assert limiter.wait_seconds("ann", "10.0.0.1") == 0


def test_users_add_stores_a_scrypt_hash_and_says_mistakes_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    subsidy = [str(Path(sys.executable).with_name("subsidy"))]
    assert subprocess.run([*subsidy, "ledger", "init", "--ledger", url], capture_output=True, text=True).returncode == 0
    added = subprocess.run([*subsidy, "console", "users", "add", "ann", "--role", "checker", "--ledger", url], input="a secret of 22 letters\n", capture_output=True, text=True)
    assert added.returncode == 0 and "ann added as checker" in added.stdout and "secret" not in added.stdout + added.stderr
    again = subprocess.run([*subsidy, "console", "users", "add", "ann", "--role", "viewer", "--ledger", url], input="another secret here\n", capture_output=True, text=True)
    short = subprocess.run([*subsidy, "console", "users", "add", "bob", "--role", "viewer", "--ledger", url], input="short\n", capture_output=True, text=True)
    bad_name = subprocess.run([*subsidy, "console", "users", "add", "Bob Smith", "--role", "viewer", "--ledger", url], input="long enough password\n", capture_output=True, text=True)
    for refused, why in ((again, "exists already"), (short, "at least 12 characters"), (bad_name, "user name")):
        assert refused.returncode != 0 and why in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    engine = make_engine(url)
    try:
        assert role_of(engine, "ann") == "checker" and role_of(engine, "bob") is None
        with engine.connect() as conn:
            stored = conn.execute(sa.select(console_users.c.password_hash)).scalar_one()
    finally:
        engine.dispose()
    assert stored.startswith("scrypt$") and password_matches(stored, "a secret of 22 letters") and not password_matches(stored, "a secret of 22 letter")


def test_a_checker_approves_a_batch_another_proposed_and_each_approval_is_in_the_chain(staffed_ledger, policy, console_helpers):
    token = "approval-break-glass-token"
    batch = console_helpers["propose_batch"](staffed_ledger["url"], policy, "chen", dual_approval_above_fen=0)  # two approvals needed
    approve = f"/api/batches/{batch}/approve"

    async def work(client):
        out = {}
        for name in ("vera", "mark", "chen"):
            out[name] = await post(client, approve, await login(client, name), {})
        csrf = await login(client, "chao")
        out["no csrf"] = await post(client, approve, None, {})
        out["unknown"] = await post(client, "/api/batches/PB999999/approve", csrf, {})
        response = await client.post(approve, headers={"X-CSRF-Token": csrf})
        out["chao"] = (response.status, await response.json())
        out["chao again"] = await post(client, approve, csrf, {})
        client.session.cookie_jar.clear()
        response = await client.post(approve, headers={"Authorization": f"Bearer {token}"})
        out["second"] = (response.status, await response.json())
        out["third"] = await post(client, approve, await login(client, "chao"), {})
        return out

    out = session_of(build_console(staffed_ledger["url"], policy, admin_token=token), work)
    assert out["vera"] == (403, "vera is a viewer: this needs the role checker or higher")
    assert out["mark"] == (403, "mark is a maker: this needs the role checker or higher")
    assert out["chen"] == (403, f"chen proposed batch {batch} and may not approve it: another checker must (maker-checker)")
    assert out["no csrf"][0] == 403 and "X-CSRF-Token" in out["no csrf"][1]
    assert out["unknown"] == (404, "no batch PB999999 in the ledger")
    assert out["chao"] == (200, {"batch_id": batch, "status": "proposed", "by": "chao", "approvers": ["chao"], "approvals_required": 2})
    assert out["chao again"] == (409, f"chao has already approved batch {batch}: it needs 2 different approvers")
    assert out["second"] == (200, {"batch_id": batch, "status": "approved", "by": "break-glass", "approvers": ["chao", "break-glass"], "approvals_required": 2})
    assert out["third"][0] == 409 and "already approved" in out["third"][1]

    with Ledger.open(staffed_ledger["url"], timezone=policy.timezone) as ledger:
        with ledger.engine.connect() as conn:
            approvals = conn.execute(sa.text("SELECT actor FROM ledger_chain_events WHERE kind = 'batch-approved' AND batch_id = :b ORDER BY seq"), {"b": batch}).scalars().all()
        assert approvals == ["chao", "break-glass"]
        assert ledger.verify_chain() == []
