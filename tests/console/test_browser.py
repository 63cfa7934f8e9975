"""The console page in a real headless browser (Debian's chromium driven by Playwright).

A generated year of the shipped policy (60,000 events) is decided by the real core up to
2026-10-15 and recorded in a SQLite ledger; the console serves it as of that day. The page
must load, draw every chart with data, refresh itself, and log no console error. The
screenshot goes to the test's temporary folder; with SUBSIDY_UPDATE_SCREENSHOT=1 it replaces
docs/console.png, the README's picture (so a test run leaves the work tree clean).

Needs: ``/usr/bin/chromium`` (apt-get install -y chromium fonts-wqy-microhei) and the Python
``playwright`` package (no ``playwright install``: the system chromium is used).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
AS_OF = dt.date(2026, 10, 15)


@pytest.fixture(scope="module")
def busy_ledger(tmp_path_factory, policy, console_helpers):
    folder = tmp_path_factory.mktemp("console-browser")
    events = folder / "events.jsonl"
    console_helpers["generated_events"](events, policy, year=2026, seed=3, enterprises=1100, events=60000, until=AS_OF.isoformat())
    url = f"sqlite:///{folder / 'ledger.sqlite'}"
    console_helpers["fill_ledger"](url, events, policy, batch_lines=5000)
    return url


def test_console_page_in_headless_chromium(browser, busy_ledger, policy, console_helpers, tmp_path):
    screenshot = README_SCREENSHOT if os.environ.get("SUBSIDY_UPDATE_SCREENSHOT") == "1" else tmp_path / "console.png"
    from console.app import build_console

    app = build_console(busy_ledger, policy, today=AS_OF)
    problems: list[str] = []
    with console_helpers["serve"](app) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

        page.goto(base + "/", wait_until="load")
        page.wait_for_selector("body[data-loaded]", state="attached", timeout=20_000)

        # the burn-down of the compute voucher: a granted line with many days, the budget, the projection
        voucher = page.locator('svg.burn[data-clause="compute-voucher"]')
        assert voucher.count() == 1
        assert int(voucher.locator("path.granted").get_attribute("data-points")) > 200
        assert len(voucher.locator("path.granted").get_attribute("d")) > 1000
        assert voucher.locator("path.budget").count() == 1
        assert voucher.locator("path.projection").count() == 1
        assert voucher.locator("circle.exhaust").count() == 1  # projected to run out within the year
        assert page.locator("svg.burn").count() >= 8  # one per clause with payments
        assert page.locator("svg.burn path.granted").count() == page.locator("svg.burn").count()

        # nearest caps as bars with widths, rejections with originals, decisions with computations
        bars = page.locator("svg.caps rect.cap-bar")
        assert bars.count() >= 5
        assert all(float(bars.nth(i).get_attribute("width")) > 0 for i in range(bars.count()))
        assert page.locator(".rej-group").count() >= 1 and page.locator("pre.original").count() >= 1
        assert page.locator("tr[data-decision]").count() >= 10

        text = page.inner_text("body")
        assert "¥100,000,000.00" in text and "算力券" in text and "compute-voucher" in text
        assert re.search(r"¥\d{1,3}(,\d{3})+\.\d{2}", text)
        assert "预计用尽 projected" in text
        assert "No stream worker metrics are configured" in text

        # a decision opens to its computation
        page.locator("tr[data-decision]").first.click()
        page.wait_for_selector(".computation", timeout=5_000)

        # the payments page lists what payees owe back; a payee's statement says where each instruction stands
        owing = page.locator("tr[data-receivable]").first.get_attribute("data-receivable")
        page.fill("#statement-payee", owing)
        page.click("#statement-show")
        page.wait_for_selector("#statement td.payment-state", timeout=5_000)
        assert "owed back" in page.inner_text("#statement")

        # it refreshes by itself (every 5 s) and stays clean
        page.wait_for_selector('body[data-loaded="2"]', state="attached", timeout=15_000)
        assert page.locator(".computation").count() == 1, "an opened decision stays open across refreshes"
        assert page.locator("#error").is_hidden()

        page.locator("tr[data-decision]").first.click()  # close it again for the picture
        height = min(page.evaluate("document.documentElement.scrollHeight"), 2600)
        page.set_viewport_size({"width": 1400, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(screenshot), full_page=False)
        page.close()

    assert problems == [], "\n".join(problems)
    assert screenshot.stat().st_size > 50_000



def test_times_are_shown_with_their_offset(browser):
    """The ledger records in UTC and events carry +08:00: a time without its offset reads as the other."""
    source = (Path(__file__).resolve().parents[2] / "console" / "static" / "console.js").read_text(encoding="utf-8")
    helpers = [re.search(rf"^function {name}\(.*?^}}$", source, re.S | re.M).group(0) for name in ("when", "localOffset")]
    page = browser.new_page()
    try:
        page.add_script_tag(content="\n".join(helpers))
        shown = page.evaluate("""() => [when("2026-03-01T09:00:00+08:00"), when("2026-03-01T01:02:03.123456+00:00"),
                                        when("2026-03-01T01:02:03Z"), when(null), localOffset(new Date(2026, 0, 1))]""")
    finally:
        page.close()
    assert shown[:4] == ["2026-03-01 09:00 +08:00", "2026-03-01 01:02 +00:00", "2026-03-01 01:02 +00:00", "—"]
    assert re.fullmatch(r"[+-]\d{2}:\d{2}", shown[4])
