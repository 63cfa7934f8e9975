"""The console over a real pipeline run: local broker, a stream worker, its ledger and /metrics.

A generated sample is published by a kafka-python producer, decided by a real worker into a
SQLite ledger; the console reads that ledger and scrapes the worker's /metrics. In headless
chromium the page must draw the burn-down charts from the ledger, list the input topics with
their throughput and consumer lag from the worker, and log no console error.
"""

from __future__ import annotations

import datetime as dt

import pytest

from console.app import build_console
from sinks.ledger import Ledger
from streams.local import LocalPipeline
from streams.tools.publish import publish_file
from streams.tools.verify import expected_from_file, wait_until_accounted

pytestmark = pytest.mark.integration


def test_console_over_a_live_pipeline(browser, policy, console_helpers, tmp_path):
    events = tmp_path / "events.jsonl"
    console_helpers["generated_events"](events, policy, year=2026, seed=9, enterprises=150, events=2500)
    expected = expected_from_file(str(events), policy)
    with LocalPipeline(workers=1, kafka="apache", workdir=tmp_path / "pipeline") as pipeline:
        assert publish_file(str(events), pipeline.bootstrap) == expected.inputs
        with Ledger.open(pipeline.ledger_url) as ledger:
            assert wait_until_accounted(ledger, expected, timeout=180), "the worker did not account for every input"
        metrics = [f"http://127.0.0.1:{worker.web_port}/metrics" for worker in pipeline.workers]
        app = build_console(pipeline.ledger_url, policy, metrics, scrape_interval=0.5, today=dt.date(2026, 12, 31))
        problems: list[str] = []
        with console_helpers["serve"](app) as base:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.goto(base + "/", wait_until="load")
            page.wait_for_selector("body[data-loaded]", state="attached", timeout=20_000)

            # burn-down charts drawn from the pipeline's ledger
            assert page.locator("svg.burn").count() >= 5
            assert int(page.locator('svg.burn[data-clause="compute-voucher"] path.granted').get_attribute("data-points")) > 20
            # the worker's stream figures: every input topic, with a lag column read from /metrics
            page.wait_for_selector("#streams table", timeout=20_000)
            streams = page.inner_text("#streams")
            for topic in ("compute-purchases", "model-invoices", "investment-closings", "award-announcements"):
                assert topic in streams
            lags = page.locator("#streams tbody tr td:last-child").all_inner_texts()
            assert lags and all(text.strip().isdigit() for text in lags), lags
            page.close()
    assert problems == [], "\n".join(problems)
