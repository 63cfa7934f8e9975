"""Operators in a real headless browser: the login page, a viewer refused a hold with the reason
on the page, a maker's hold, its release by a checker (the approval the four eyes need), and a
checker's approval of the payment batch a maker proposed, from the Payments page."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def logged_in(browser, base: str, name: str, problems: list[str]):
    """A fresh browser context (its own cookies) logged in as ``name`` through the login page."""
    context = browser.new_context()
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"{name}: page error: {e}"))
    # refusals are answers the page shows; chromium logs each non-2xx fetch as a console error
    page.on("console", lambda m: problems.append(f"{name}: console.{m.type}: {m.text}") if m.type == "error" and "status of 40" not in m.text else None)
    page.goto(base + "/", wait_until="load")
    page.wait_for_url(base + "/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_selector("body[data-loaded]", state="attached", timeout=20_000)
    return context, page


def hold_form(page, payee: str, reason: str, button: str) -> tuple[str, str]:
    page.fill("#hold-payee", payee)
    page.fill("#hold-reason", reason)
    page.click(button)
    page.wait_for_selector("#action-result[data-status]", timeout=10_000)
    result = page.locator("#action-result")
    shown = (result.get_attribute("data-status"), result.inner_text())
    page.evaluate("delete document.getElementById('action-result').dataset.status")
    return shown


def test_login_a_refused_viewer_a_checkers_release_and_approval(browser, staffed_ledger, policy, console_helpers):
    from console.app import build_console

    payee = staffed_ledger["payee"]
    batch = console_helpers["propose_batch"](staffed_ledger["url"], policy, "mark", dual_approval_above_fen=10_000_000_00)
    problems: list[str] = []
    app = build_console(staffed_ledger["url"], policy, today=dt.date(2026, 12, 31))
    with console_helpers["serve"](app) as base:
        # a wrong password is said on the login page, and nothing else opens
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/login")
        page.fill("#name", "vera")
        page.fill("#password", "not her password")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error:not(:empty)", timeout=10_000)
        assert page.inner_text("#login-error") == "wrong user name or password"
        context.close()

        context, page = logged_in(browser, base, "vera", problems)
        assert page.inner_text("#operator") == "vera · viewer"
        assert page.locator(f'tr[data-batch="{batch}"]').count() == 1 and page.locator("[data-approve]").count() == 0  # not offered to a viewer
        status, text = hold_form(page, payee, "suspicious invoices", "#hold-place")
        assert status == "403" and text == "refused (403): vera is a viewer: this needs the role maker or higher"
        context.close()

        context, page = logged_in(browser, base, "mark", problems)
        status, text = hold_form(page, payee, "bank account under review", "#hold-place")
        assert status == "200" and text.startswith(f"held {payee}: by mark")
        page.wait_for_selector(f'tr[data-hold="{payee}"]', timeout=10_000)
        context.close()

        context, page = logged_in(browser, base, "chen", problems)
        assert page.locator(f'tr[data-hold="{payee}"]').count() == 1
        status, text = hold_form(page, payee, "account confirmed by the bank", "#hold-release")
        assert status == "200" and text.startswith(f"released {payee}: by chen")
        page.wait_for_selector(f'tr[data-hold="{payee}"]', state="detached", timeout=10_000)
        assert "No payee is on hold." in page.inner_text("#holds")

        page.click(f'[data-approve="{batch}"]')
        page.wait_for_selector("#approval-result[data-status]", timeout=10_000)
        assert page.get_attribute("#approval-result", "data-status") == "200"
        assert page.inner_text("#approval-result") == f"approved {batch}: by chen, 1 of 1 approval(s), approved"
        page.wait_for_selector(f'[data-approve="{batch}"]', state="detached", timeout=10_000)  # approved: nothing left to approve
        assert page.inner_text(f'tr[data-batch="{batch}"] .badge') == "approved"
        page.click("#logout")
        page.wait_for_url(base + "/login")
        context.close()
    assert problems == [], "\n".join(problems)
