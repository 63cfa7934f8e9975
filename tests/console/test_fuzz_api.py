"""The console's API fuzzed from its own OpenAPI document (schemathesis): no input, valid or not,
is answered 5xx, and each answer is the one the document describes. Bad input is a 400 with a
one-line reason, never a 503 (an outage). Seeded and bounded: some 25 examples an operation."""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from console.openapi import spec
from rules.policy import load_policy

ADMIN_TOKEN = "fuzz-break-glass-token"
schema = schemathesis.openapi.from_dict(spec(load_policy().clauses))


@pytest.fixture(scope="module")
def console_url(staffed_ledger, policy, console_helpers):
    """The console over a ledger with operators: every data route needs the login, or the
    break-glass token the fuzzing sends, which reaches the actions' own checks; and a batch
    proposed by a maker, PB000001, the approval's example."""
    from console.app import build_console

    assert console_helpers["propose_batch"](staffed_ledger["url"], policy, "mark", dual_approval_above_fen=10_000_000_00) == "PB000001"

    app = build_console(staffed_ledger["url"], policy, admin_token=ADMIN_TOKEN, today=dt.date(2026, 12, 31))
    with console_helpers["serve"](app) as base:
        yield base


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_input_is_answered_with_a_server_error(case, console_url):
    response = case.call_and_validate(base_url=console_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, case.query, response.text[:200])


@pytest.mark.parametrize("query", ["clause=%00", "outcome=%00", "limit=%00", "clause=%FF%FE", "limit=1e400"])
def test_bad_input_is_a_bad_request_with_one_line(console_url, query):
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{console_url}/api/decisions/recent?{query}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    reason = json.loads(answer.value.read())["error"]
    assert reason and "\n" not in reason
