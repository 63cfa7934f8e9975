"""Fixtures for the console: ledgers filled by the real pipeline core, and a console served on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from rules.policy import load_policy
from sinks.ledger import Ledger

CHROMIUM = os.environ.get("SUBSIDY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def policy():
    return load_policy()


def fill_ledger(url: str, events_file: Path, policy, batch_lines: int = 1000):
    """Run every line through ``rules.intake.intake`` + ``rules.engine.Engine`` into ``Ledger.record``."""
    from subsidy.replay import replay

    with Ledger.open(url, timezone=policy.timezone) as ledger:
        return replay(events_file, policy, ledger, batch_lines=batch_lines)


def generated_events(path: Path, policy, *, year: int, seed: int, enterprises: int, events: int, until: str | None = None) -> int:
    """A generated year (``subsidy.generate``), optionally cut after the day ``until`` (YYYY-MM-DD)."""
    from subsidy.generate import generate_lines

    kept = 0
    with open(path, "w", encoding="utf-8") as out:
        for line in generate_lines(year, seed=seed, enterprises=enterprises, events=events, policy=policy):
            if until is not None:
                value = json.loads(line).get("value")
                at = value.get("occurred_at") if isinstance(value, dict) else None
                if isinstance(at, str) and at[:10] > until:
                    continue
            out.write(line + "\n")
            kept += 1
    return kept


@pytest.fixture(scope="session")
def pipeline_ledger(tmp_path_factory, policy):
    """A SQLite ledger holding a small generated year (2026) decided by the real core."""
    folder = tmp_path_factory.mktemp("console-ledger")
    events = folder / "events.jsonl"
    generated_events(events, policy, year=2026, seed=5, enterprises=80, events=2500)
    url = f"sqlite:///{folder / 'ledger.sqlite'}"
    summary = fill_ledger(url, events, policy, batch_lines=400)
    return {"url": url, "path": folder / "ledger.sqlite", "summary": summary}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app, host: str = "127.0.0.1"):
    """Serve an aiohttp app on a free port from a background thread; yields the base URL."""
    from aiohttp import web

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, host, port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="console-server", daemon=True)
    thread.start()
    assert started.wait(30), "console server did not start"
    try:
        yield f"http://{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def staffed_ledger(pipeline_ledger, tmp_path_factory):
    """A copy of the console's ledger with operators (password "correct horse battery"): vera the
    viewer, mark the maker, chen and chao the checkers; and a payee of it."""
    import shutil

    import sqlalchemy as sa

    from console.users import add_user
    from sinks.ledger import make_engine
    from sinks.ledger.schema import accounts

    path = tmp_path_factory.mktemp("operators") / "ledger.sqlite"
    shutil.copyfile(pipeline_ledger["path"], path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    try:
        for name, role in {"vera": "viewer", "mark": "maker", "chen": "checker", "chao": "checker"}.items():
            add_user(engine, name, role, "correct horse battery")
        with engine.connect() as conn:
            payee = conn.execute(sa.select(accounts.c.payee_id).where(accounts.c.payee_id.is_not(None)).limit(1)).scalar_one()
    finally:
        engine.dispose()
    return {"url": url, "payee": payee}


def propose_batch(url: str, policy, maker: str, *, dual_approval_above_fen: int) -> str:
    """A batch proposed by ``maker`` of the payments of one payee of the ledger, given an account."""
    import sqlalchemy as sa

    from sinks.ledger.schema import instructions_t

    with Ledger.open(url, timezone=policy.timezone) as ledger:
        with ledger.engine.connect() as conn:
            payee = conn.execute(sa.select(instructions_t.c.payee_id).where(instructions_t.c.kind == "payment").order_by(instructions_t.c.journal_seq).limit(1)).scalar_one()
        ledger.import_payee_accounts([{"source": "registry", "event_id": f"account-{payee}", "payee_id": payee, "account_name": "收款方",
                                       "account_number": "6222021001012345678", "bank_code": "102651020012", "verified_at": "2026-01-01T00:00:00+00:00", "revoked": False}])
        return ledger.propose_batch(maker, dual_approval_above_fen=dual_approval_above_fen).batch_id


@pytest.fixture(scope="session")
def console_helpers():
    """The helpers above, for test modules (a conftest is not importable by name)."""
    return {"serve": serve, "fill_ledger": fill_ledger, "generated_events": generated_events, "free_port": free_port, "propose_batch": propose_batch}


@pytest.fixture(scope="module")
def browser():
    # fails, never skips, where chromium is missing: `make test` installs it
    assert os.access(CHROMIUM, os.X_OK), f"no chromium at {CHROMIUM}: run `make test`, or apt-get install -y chromium fonts-wqy-microhei"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
