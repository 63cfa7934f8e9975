"""The console's JSON API, /metrics and read-only guard, over a ledger filled by the real core."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from console.app import build_console
from console.openapi import spec
from console.promtext import parse
from console.readmodel import LedgerReader
from rules.money import parse_amount
from sinks.ledger import Ledger

MONEY = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]{2}$")
# keys whose values may be floats: ratios, rates and counts that are not money
FLOAT_KEYS = {"used_ratio", "events_in_total", "events_in_per_second", "events_out_total", "events_out_per_second", "lag", "scraped_at", "interval_seconds"}
API_PATHS = ["/api/summary", "/api/budgets", "/api/caps/nearest", "/api/decisions/recent", "/api/rejections", "/api/held-payments", "/api/payments", "/api/holds", "/api/streams", "/api/whatif", "/api/ledger-integrity", "/healthz"]


def run(app: web.Application, work):
    async def main():
        async with TestClient(TestServer(app)) as client:
            return await work(client)

    return asyncio.run(main())


def get_all(app: web.Application, paths: list[str]) -> dict[str, tuple[int, dict, str]]:
    async def work(client):
        out = {}
        for path in paths:
            response = await client.get(path)
            out[path] = (response.status, dict(response.headers), await response.text())
        return out

    return run(app, work)


def walk(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
            yield f"{path}.{key}", key, item
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, f"{path}[{i}]")


def assert_money_is_never_float(document):
    for where, key, item in walk(document):
        if isinstance(item, float):
            assert key in FLOAT_KEYS, f"float at {where}: {item!r}"
        if key.endswith("_fen") and item is not None:
            assert type(item) is int, f"{where} is {item!r}, not integer fen"
        if key in {"granted", "declined", "budget", "remaining", "paid", "clawed_back", "net_granted", "limit", "used", "room", "slope_per_day"} and isinstance(item, str):
            assert MONEY.match(item), f"{where} = {item!r} is not a decimal string"


def validate(document, schema_name: str):
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec()["components"]}
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.fixture
def app(pipeline_ledger, policy):
    return build_console(pipeline_ledger["url"], policy, today=dt.date(2026, 12, 31))


def test_every_api_route_answers_json_matching_its_openapi_schema(app):
    answers = get_all(app, API_PATHS + ["/openapi.json"])
    schemas = {"/api/summary": "Summary", "/api/budgets": "Budgets", "/api/caps/nearest": "NearestCaps", "/api/decisions/recent": "RecentDecisions", "/api/rejections": "Rejections", "/api/held-payments": "HeldPayments", "/api/payments": "Payments", "/api/holds": "Holds", "/api/streams": "Streams", "/api/whatif": "WhatIf",
               "/api/ledger-integrity": "LedgerIntegrity"}
    for path, (status, headers, text) in answers.items():
        assert status == 200, (path, text[:300])
        assert headers["Content-Type"].startswith("application/json"), path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        document = json.loads(text)
        if path != "/openapi.json":
            assert_money_is_never_float(document)
        if path in schemas:
            validate(document, schemas[path])


def test_a_saved_whatif_is_served_beside_the_budgets(pipeline_ledger, policy, tmp_path):
    """`subsidy whatif ... --save FILE` then `subsidy console --whatif FILE`: /api/whatif answers the file."""
    from whatif_events import RATE_50, RATE_60, THREE_PURCHASES, events_line, policy_file

    from console.whatif import SavedWhatIfError, load_saved_whatif
    from subsidy.cli import main

    events = tmp_path / "events.jsonl"
    events.write_text("".join(events_line(topic, raw) + "\n" for topic, raw in THREE_PURCHASES), encoding="utf-8")
    saved = tmp_path / "whatif.json"
    assert main(["whatif", str(events), "--policy", str(policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))), "--json", "--save", str(saved)]) == 0
    app = build_console(pipeline_ledger["url"], policy, today=dt.date(2026, 12, 31), whatif=load_saved_whatif(saved))
    (status, _, text), = get_all(app, ["/api/whatif"]).values()
    document = json.loads(text)
    validate(document, "WhatIf")
    assert status == 200 and document["saved"] is True and document["diff"] == {"compute-voucher": {"2026": "-300.00"}}
    assert document["exhaustion"]["new"] == {"compute-voucher": {"2026": None}}
    saved.write_text('{"granted": {}}')
    with pytest.raises(SavedWhatIfError, match="is not one `subsidy whatif --save` wrote"):
        load_saved_whatif(saved)


def test_the_newest_signed_checkpoint_and_whether_the_chain_leads_to_it(pipeline_ledger, policy, tmp_path, monkeypatch):
    from sinks.ledger.checkpoints import Checkpoint, SigningKey, generate_key, make_checkpoint

    generate_key(tmp_path / "k.pem")
    with Ledger.open(pipeline_ledger["url"], upgrade=False) as ledger:
        signed = make_checkpoint(ledger, SigningKey.load(tmp_path / "k.pem"))
    checkpoints = tmp_path / "checkpoints.jsonl"
    monkeypatch.setenv("SUBSIDY_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("SUBSIDY_CHECKPOINT_PUBLIC_KEY", str(tmp_path / "k.pem.pub"))
    forged = Checkpoint(signed.seq, "f" * 64, signed.entries, signed.time, signed.key_id, signed.signature)
    for written, verified in ((signed, True), (forged, False)):
        checkpoints.write_text(written.to_json() + "\n")
        (status, _, text), = get_all(build_console(pipeline_ledger["url"], policy), ["/api/ledger-integrity"]).values()
        answer = json.loads(text)
        assert status == 200 and answer["verified"] is verified and answer["checkpoint"]["seq"] == signed.seq, answer
    assert answer["problems"] == [f"checkpoint at seq {signed.seq}: its signature does not verify with key {signed.key_id}: the checkpoint was altered"]


def test_budgets_match_the_ledger_journal(app, pipeline_ledger, policy):
    (status, _, text), = get_all(app, ["/api/budgets"]).values()
    budgets = json.loads(text)["budgets"]
    with Ledger.open(pipeline_ledger["url"], upgrade=False) as ledger:
        totals = ledger.granted_totals()
    shown = {(b["clause_id"], b["fiscal_year"]): b for b in budgets}
    for clause, years in totals.items():
        for year, fen in years.items():
            b = shown[(clause, year)]
            assert b["granted_fen"] == fen and parse_amount(b["granted"]) == fen
            assert b["title"] == policy.clauses[clause].title
            assert b["series"] and b["series"][-1]["granted_fen"] == fen
            dates = [p["date"] for p in b["series"]]
            assert dates == sorted(dates) and all(d.startswith(str(year)) for d in dates)
    voucher = shown[("compute-voucher", 2026)]
    assert voucher["budget_fen"] == 100_000_000_00 and voucher["budget"] == "100000000.00"
    assert voucher["remaining_fen"] == voucher["budget_fen"] - voucher["granted_fen"]
    assert voucher["projection"]["status"] in {"projected", "no-trend", "exhausted"}
    assert voucher["projection"]["window_to"] == "2026-12-31"
    # a clause with no programme budget says so instead of inventing one
    assert shown[("model-usage", 2026)]["budget_fen"] is None
    assert shown[("model-usage", 2026)]["projection"]["status"] == "no-budget"
    # the benchmark scenarios' count limit (20 a year) is reported with its use
    assert shown[("benchmark-scenario", 2026)]["count_limits"][0]["limit"] == 20


def test_projection_by_linear_trend_of_the_last_30_days(pipeline_ledger, policy):
    reader = LedgerReader(pipeline_ledger["url"], policy, today=dt.date(2026, 6, 30))
    try:
        year_end = dt.date(2026, 12, 31)
        # 1,000.00 a day for 60 days up to 2026-06-30: 40,000.00 left of a 100,000.00 budget -> 40 more days
        series = [{"date": (dt.date(2026, 5, 2) + dt.timedelta(days=i)).isoformat(), "granted_fen": 100_000 * (i + 1)} for i in range(60)]
        p = reader._projection(series, 10_000_000, dt.date(2026, 6, 30), year_end)
        assert p["status"] == "projected" and p["slope_fen_per_day"] == 100_000
        assert p["exhaustion_date"] == "2026-08-09" and p["within_fiscal_year"] is True
        # slower: runs past the year end
        p = reader._projection(series, 1_000_000_000, dt.date(2026, 6, 30), year_end)
        assert p["status"] == "projected" and p["within_fiscal_year"] is False
        assert p["year_end_granted_fen"] == 6_000_000 + 100_000 * 184
        # nothing new in the window: no trend, no date
        p = reader._projection(series[:10], 10_000_000, dt.date(2026, 6, 30), year_end)
        assert p["status"] == "no-trend" and p["exhaustion_date"] is None
        # reached: the first day the total met the budget
        p = reader._projection(series, 3_000_000, dt.date(2026, 6, 30), year_end)
        assert p["status"] == "exhausted" and p["exhaustion_date"] == "2026-05-31"
        # cut by the budget before the total reached it (room left smaller than every claim)
        p = reader._projection(series, 9_000_000, dt.date(2026, 6, 30), year_end, first_budget_decline="2026-06-20")
        assert p["status"] == "exhausted" and p["exhaustion_date"] == "2026-06-20"
    finally:
        reader.close()


def test_nearest_caps_are_ordered_and_named(app):
    answers = get_all(app, ["/api/caps/nearest?limit=5", "/api/caps/nearest?kind=count&limit=3", "/api/caps/nearest?limit=0", "/api/caps/nearest?kind=sum"])
    status, _, text = answers["/api/caps/nearest?limit=5"]
    caps = json.loads(text)["caps"]
    assert 0 < len(caps) <= 5
    ratios = [c["used_ratio"] for c in caps]
    assert ratios == sorted(ratios, reverse=True)
    for c in caps:
        assert c["kind"] == "amount" and c["who"] and c["title"]
        assert c["used_fen"] + c["room_fen"] == c["limit_fen"]
        assert c["beneficiary"]["name"]
    counted = json.loads(answers["/api/caps/nearest?kind=count&limit=3"][2])["caps"]
    assert all(c["kind"] == "count" and "limit_count" in c for c in counted)
    assert answers["/api/caps/nearest?limit=0"][0] == 400
    assert answers["/api/caps/nearest?kind=sum"][0] == 400


def test_recent_decisions_carry_their_computation(app, pipeline_ledger):
    answers = get_all(app, ["/api/decisions/recent?limit=7", "/api/decisions/recent?limit=5&outcome=declined", "/api/decisions/recent?limit=3&clause=model-usage"])
    decisions = json.loads(answers["/api/decisions/recent?limit=7"][2])["decisions"]
    assert len(decisions) == 7
    for d in decisions:
        assert d["computation"] is not None and d["clause_title"]
        assert d["granted_fen"] == parse_amount(d["granted"])
    keys = [(d["recorded_at"], d["occurred_at"]) for d in decisions]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)
    declined = json.loads(answers["/api/decisions/recent?limit=5&outcome=declined"][2])["decisions"]
    assert declined and all(d["outcome"] == "declined" for d in declined)
    model = json.loads(answers["/api/decisions/recent?limit=3&clause=model-usage"][2])["decisions"]
    assert len(model) == 3 and all(d["clause_id"] == "model-usage" for d in model)


def test_a_decisions_filter_that_matches_nothing_is_a_bad_request_naming_the_valid_values(app, policy):
    """Bad input is not an outage (503) nor an empty answer: 400, saying what is valid."""
    bad = ["/api/decisions/recent?clause=%00", "/api/decisions/recent?clause=no-such-clause", "/api/decisions/recent?outcome=maybe"]
    answers = get_all(app, bad)
    for path in bad:
        status, headers, text = answers[path]
        assert status == 400 and headers["Content-Type"].startswith("application/json"), (path, status, text)
    clause_error = json.loads(answers[bad[0]][2])["error"]
    assert clause_error.startswith("clause must be one of: ") and all(c in clause_error for c in policy.clauses)
    outcome_error = json.loads(answers[bad[2]][2])["error"]
    parameters = spec()["paths"]["/api/decisions/recent"]["get"]["parameters"]
    outcomes = next(p for p in parameters if p["name"] == "outcome")["schema"]["enum"]
    assert outcome_error == "outcome must be one of: " + ", ".join(sorted(outcomes))
    assert "400" in spec()["paths"]["/api/decisions/recent"]["get"]["responses"]


def test_rejections_grouped_by_code_with_the_original_message(app, pipeline_ledger):
    (status, _, text), = get_all(app, ["/api/rejections?examples=2"]).values()
    data = json.loads(text)
    with Ledger.open(pipeline_ledger["url"], upgrade=False) as ledger:
        assert data["total"] == ledger.counts()["rejections"] > 0
    assert sum(g["count"] for g in data["groups"]) == data["total"]
    counts = [g["count"] for g in data["groups"]]
    assert counts == sorted(counts, reverse=True)
    for group in data["groups"]:
        assert sum(group["by_topic"].values()) == group["count"]
        assert 1 <= len(group["examples"]) <= 2
        for example in group["examples"]:
            assert example["reason"]
            assert example["original_text"] or example["original_base64"]
    by_code = {g["code"]: g for g in data["groups"]}
    if "invalid-field" in by_code:  # a fractional JSON amount: the original bytes show the float
        assert any("event_id" in (e["original_text"] or "") for e in by_code["invalid-field"]["examples"])


def test_held_payments_name_their_listing_and_the_day_they_may_be_paid_from(tmp_path, policy):
    from rules.exclusions import Listing
    from tests.ledger.factory import purchase
    from tests.ledger.factory import run as decide

    out = decide([purchase("e1", 1, "1000.00", when="2026-05-01T09:00:00+08:00"), purchase("e2", 2, "2000.00", when="2026-11-02T09:00:00+08:00")])
    provider = out.instructions[0].payee.id
    listing = Listing(provider, "dishonest-judgment-debtor", "川01执7号", dt.date(2026, 4, 8), dt.date(2026, 10, 7), "chengdu-credit-platform", "x1", "2026-04-08T09:00:00+08:00")
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, timezone=policy.timezone) as ledger:
        ledger.record(out.decisions, out.instructions, [], [listing])
    status, _, text = get_all(build_console(url, policy, today=dt.date(2026, 6, 1)), ["/api/held-payments"])["/api/held-payments"]
    assert status == 200
    held = json.loads(text)
    validate(held, "HeldPayments")
    (hold,) = held["holds"]  # e2, after the listing, is not held
    assert (held["count"], held["total_fen"], held["as_of"]) == (1, 60000, "2026-06-01")
    assert hold | {"instruction_id": "", "payee_name": ""} == {
        "instruction_id": "", "payee_id": provider, "payee_name": "", "clause_id": "compute-voucher", "fiscal_year": 2026, "amount_fen": 60000, "amount": "600.00",
        "held_from": "2026-05-01", "payable_from": "2026-10-08",
        "listing": {"listed_party": provider, "list": "dishonest-judgment-debtor", "reference": "川01执7号", "from": "2026-04-08", "to": "2026-10-07"}}
    # released on 10-08: no longer held from that day
    assert json.loads(get_all(build_console(url, policy, today=dt.date(2026, 10, 8)), ["/api/held-payments"])["/api/held-payments"][2])["holds"] == []


def test_the_payments_page_and_where_each_payment_of_a_payee_stands(tmp_path, policy):
    from parties import uscc
    from tests.ledger.factory import purchase
    from tests.ledger.factory import run as decide
    from tests.ledger.test_payments import account

    paid, waiting = uscc(9_000_000), uscc(9_000_001)  # the providers compute vouchers pay
    first = [purchase("e1", 1, "1000.00"), purchase("e2", 2, "100.00", provider=9_000_001), purchase("r1", 1, "500.00", refund_of="e1", when="2026-03-11T10:00:00+08:00")]
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, timezone=policy.timezone) as ledger:
        out = decide(first)
        ledger.record(out.decisions, out.instructions, [])
        ledger.import_payee_accounts([account(paid)])
        ledger.approve_batch(ledger.propose_batch("alice").batch_id, "bob")  # e1's 600.00 less r1's 300.00
        out = decide([*first, purchase("r2", 1, "500.00", refund_of="e1", when="2026-04-20T10:00:00+08:00")])  # 300.00 more owed back
        ledger.record(out.decisions, out.instructions, [])
        e1, e2, r1, r2 = (i.instruction_id for i in out.instructions)
    app = build_console(url, policy, today=dt.date(2099, 12, 31))  # after the offset was recorded (now)
    answers = get_all(app, ["/api/payments", f"/api/payee-payments?payee_id={paid}", f"/api/payee-payments?payee_id={waiting}",
                            "/api/payee-payments?payee_id=nobody", "/api/payee-payments"])
    page = json.loads(answers["/api/payments"][2])
    validate(page, "Payments")
    assert_money_is_never_float(page)
    [batch] = page["batches"]
    assert (batch["batch_id"], batch["status"], batch["maker"], batch["approvers"], batch["control_sum"], page["awaiting_approval"]) == ("PB000001", "approved", "alice", ["bob"], "300.00", 0)
    assert page["states"] == [{"state": "approved", "payments": 1, "amount_fen": 30000, "amount": "300.00"}]
    assert (page["awaiting_account"]["payments"], page["awaiting_account"]["total"], page["bank_refusals"]) == (1, "60.00", [])
    assert (page["receivables"]["total"], page["receivables"]["payees"][0]["since"], page["receivables"]["buckets"][">180"]) == ("300.00", "2026-04-20", "300.00")

    statement = json.loads(answers[f"/api/payee-payments?payee_id={paid}"][2])
    validate(statement, "PayeePayments")
    stands = {i["instruction_id"]: (i["state"], i["batch_id"], i["netted_fen"]) for i in statement["instructions"]}
    assert stands == {e1: ("approved", "PB000001", 30000), r1: ("recovered", "PB000001", 30000), r2: ("owed back", None, 0)}
    assert (statement["owed_back"], statement["has_account"]) == ("300.00", True)
    assert [i["state"] for i in json.loads(answers[f"/api/payee-payments?payee_id={waiting}"][2])["instructions"]] == ["awaiting account"]
    assert e2 in answers[f"/api/payee-payments?payee_id={waiting}"][2]
    assert answers["/api/payee-payments?payee_id=nobody"][0] == 404 and answers["/api/payee-payments"][0] == 400


def test_streams_without_workers_explains_itself(app):
    (status, _, text), = get_all(app, ["/api/streams"]).values()
    data = json.loads(text)
    assert data["configured"] is False and data["topics"] == [] and "--worker-metrics" in data["explanation"]


WORKER_METRICS = """# HELP subsidy_events_in_total Messages consumed per topic.
# TYPE subsidy_events_in_total counter
subsidy_events_in_total{topic="compute-purchases",partition="0"} %d
subsidy_events_in_total{topic="compute-purchases",partition="1"} 100
subsidy_events_in_total{topic="model-invoices",partition="0"} 40
# HELP subsidy_consumer_lag Messages behind the end of the partition.
# TYPE subsidy_consumer_lag gauge
subsidy_consumer_lag{topic="compute-purchases",partition="0"} 7
subsidy_consumer_lag{topic="compute-purchases",partition="1"} 5
# HELP subsidy_e2e_latency_seconds Event time to decision sent.
# TYPE subsidy_e2e_latency_seconds histogram
subsidy_e2e_latency_seconds_bucket{le="0.1"} 3
subsidy_e2e_latency_seconds_bucket{le="+Inf"} 4
subsidy_e2e_latency_seconds_sum 0.9
subsidy_e2e_latency_seconds_count 4
"""


def test_streams_and_metrics_from_a_worker(pipeline_ledger, policy):
    async def scenario():
        hits = {"n": 0}

        async def worker_metrics(request):
            hits["n"] += 1
            return web.Response(text=WORKER_METRICS % (1000 + 500 * hits["n"]), content_type="text/plain")

        worker = web.Application()
        worker.router.add_get("/metrics", worker_metrics)
        async with TestServer(worker) as worker_server:
            url = str(worker_server.make_url("/metrics"))
            app = build_console(pipeline_ledger["url"], policy, [url, "http://127.0.0.1:9/metrics"], scrape_interval=0.2)
            async with TestClient(TestServer(app)) as client:
                for _ in range(50):
                    data = await (await client.get("/api/streams")).json()
                    topics = {t["topic"]: t for t in data["topics"]}
                    if topics.get("compute-purchases", {}).get("events_in_per_second"):
                        break
                    await asyncio.sleep(0.1)
                metrics_text = await (await client.get("/metrics")).text()
        return data, metrics_text

    data, metrics_text = asyncio.run(scenario())
    assert data["configured"] is True
    up = {w["url"].split("/")[2]: w["up"] for w in data["workers"]}
    assert up["127.0.0.1:9"] is False and list(up.values()).count(True) == 1
    topics = {t["topic"]: t for t in data["topics"]}
    assert topics["compute-purchases"]["lag"] == 12
    assert topics["compute-purchases"]["events_in_per_second"] > 0
    assert topics["model-invoices"]["events_in_total"] == 40
    families = parse(metrics_text)
    assert families["subsidy_e2e_latency_seconds"].type == "histogram"
    assert all("worker" in s.labels for s in families["subsidy_consumer_lag"].samples)
    worker_up = {s.labels["worker"]: s.value for s in families["subsidy_console_worker_up"].samples}
    assert worker_up["127.0.0.1:9"] == 0 and sorted(worker_up.values()) == [0, 1]


def test_metrics_parse_and_agree_with_the_ledger(app, pipeline_ledger):
    (status, headers, text), = get_all(app, ["/metrics"]).values()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = parse(text)
    for name in ("subsidy_console_ledger_up", "subsidy_granted_fen_total", "subsidy_budget_fen", "subsidy_budget_remaining_fen", "subsidy_ledger_events_total", "subsidy_ledger_decisions_total", "subsidy_ledger_rejections_total", "subsidy_ledger_record_delay_seconds"):
        assert name in families and families[name].samples, name
    assert families["subsidy_console_ledger_up"].samples[0].value == 1
    with Ledger.open(pipeline_ledger["url"], upgrade=False) as ledger:
        totals = ledger.granted_totals()
        counts = ledger.counts()
    granted = {(s.labels["clause"], int(s.labels["fiscal_year"])): s.value for s in families["subsidy_granted_fen_total"].samples}
    assert granted == {(c, y): fen for c, years in totals.items() for y, fen in years.items()}
    assert sum(s.value for s in families["subsidy_ledger_decisions_total"].samples) == counts["decisions"]
    assert sum(s.value for s in families["subsidy_ledger_rejections_total"].samples) == counts["rejections"]
    assert {s.labels["reason"] for s in families["subsidy_ledger_rejections_total"].samples}
    remaining = {s.labels["clause"]: s.value for s in families["subsidy_budget_remaining_fen"].samples}
    budget = {s.labels["clause"]: s.value for s in families["subsidy_budget_fen"].samples}
    assert remaining["compute-voucher"] == budget["compute-voucher"] - granted[("compute-voucher", 2026)]
    buckets = [s for s in families["subsidy_ledger_record_delay_seconds"].samples if s.name.endswith("_bucket")]
    values = [s.value for s in buckets]
    assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"
    count = next(s.value for s in families["subsidy_ledger_record_delay_seconds"].samples if s.name.endswith("_count"))
    assert values[-1] == count == counts["decisions"]
    try:  # cross-check with the reference parser when it is installed
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    assert {f.name for f in text_string_to_metric_families(text)}


def test_openapi_describes_exactly_the_routes(app, policy):
    document = spec(policy.clauses)
    assert document["openapi"].startswith("3.1")
    routes: dict[str, set[str]] = {}
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None or "prefix" in info:  # the static files
            continue
        routes.setdefault(path, set()).update(r.method.lower() for r in resource)
    assert routes == {path: set(item) | ({"head"} if "get" in item else set()) for path, item in document["paths"].items()}
    for path, item in document["paths"].items():
        for operation in item.values():
            assert "200" in operation["responses"], path
    # every $ref resolves
    refs = {v for _, k, v in walk(document) if k == "$ref"}
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"], ref
    jsonschema.Draft202012Validator.check_schema({"components": document["components"]})
    (status, _, text), = get_all(app, ["/openapi.json"]).values()
    assert json.loads(text) == json.loads(json.dumps(document))


def test_the_page_and_its_assets_are_served(app):
    answers = get_all(app, ["/", "/static/console.js", "/static/console.css", "/static/favicon.svg", "/static/../app.py"])
    status, headers, html = answers["/"]
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "/static/console.js" in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    for asset in ("/static/console.js", "/static/console.css", "/static/favicon.svg"):
        assert answers[asset][0] == 200, asset
    assert answers["/static/../app.py"][0] in (403, 404)
    assert "https://" not in answers["/static/console.js"][2]  # no CDN


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_other_than_get_are_refused_to_nobody(method, pipeline_ledger, policy):
    app = build_console(pipeline_ledger["url"], policy, admin_token="")

    async def work(client):
        response = await client.request(method, "/api/budgets", data=b"{}")
        return response.status, response.headers.get("WWW-Authenticate"), await response.text()

    status, challenge, text = run(app, work)
    assert status == 401 and challenge.startswith("Bearer")
    assert "log in first" in text


def test_the_admin_token_is_a_break_glass_admin(pipeline_ledger, policy, monkeypatch, caplog):
    monkeypatch.setenv("SUBSIDY_CONSOLE_ADMIN_TOKEN", "s3cret-token")
    app = build_console(pipeline_ledger["url"], policy)

    async def work(client):
        out = {}
        for name, headers in {"none": {}, "wrong": {"Authorization": "Bearer nope"}, "basic": {"Authorization": "Basic s3cret-token"}, "right": {"Authorization": "Bearer s3cret-token"}}.items():
            response = await client.post("/api/budgets", headers=headers)
            out[name] = response.status
        head = await client.head("/api/summary")
        out["head"] = head.status
        return out

    out = run(app, work)
    assert out["none"] == out["wrong"] == out["basic"] == 401
    assert out["right"] == 405  # let through, and budgets take no POST
    assert out["head"] == 200
    assert "BREAK-GLASS admin token used" in caplog.text


def test_the_console_cannot_write_the_ledger(pipeline_ledger, policy):
    path = pipeline_ledger["path"]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    app = build_console(pipeline_ledger["url"], policy)
    answers = get_all(app, API_PATHS + ["/metrics", "/"])
    assert all(a[0] == 200 for a in answers.values())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    reader = LedgerReader(pipeline_ledger["url"], policy)
    try:
        with reader.engine.connect() as conn:
            with pytest.raises(Exception, match="readonly|read-only|query_only"):
                conn.exec_driver_sql("DELETE FROM ledger_rejections")
    finally:
        reader.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_missing_ledger_is_reported_not_created(tmp_path, policy):
    missing = tmp_path / "nowhere.sqlite"
    app = build_console(f"sqlite:///{missing}", policy)
    answers = get_all(app, ["/api/budgets", "/api/summary", "/healthz", "/metrics", "/", "/api/streams"])
    for path in ("/api/budgets", "/api/summary", "/healthz"):
        status, _, text = answers[path]
        assert status == 503 and "cannot read the ledger" in json.loads(text)["error"]
    assert answers["/"][0] == 200 and answers["/api/streams"][0] == 200
    families = parse(answers["/metrics"][2])
    assert families["subsidy_console_ledger_up"].samples[0].value == 0
    assert not missing.exists()


def test_the_operator_is_told_at_start_when_no_ledger_is_there_yet(tmp_path, pipeline_ledger):
    from console.cli import missing_ledger_note

    missing = f"sqlite:///{tmp_path}/nowhere.sqlite"
    note = missing_ledger_note(missing)
    assert missing in note and "subsidy ledger init" in note and "--ledger" in note
    assert not (tmp_path / "nowhere.sqlite").exists()
    assert missing_ledger_note(pipeline_ledger["url"]) is None
    # a server that does not answer is left to each request's 503, which says why
    assert missing_ledger_note("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1") is None


def test_cli_registers_console_bound_to_localhost(monkeypatch):
    import argparse

    from console.cli import add_console_commands

    parser = argparse.ArgumentParser(prog="subsidy")
    add_console_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["console", "--worker-metrics", "http://127.0.0.1:6066/metrics", "--worker-metrics", "http://127.0.0.1:6067/metrics"])
    assert args.host == "127.0.0.1" and args.port == 8080 and args.ledger is None
    assert args.worker_metrics == ["http://127.0.0.1:6066/metrics", "http://127.0.0.1:6067/metrics"]
    assert callable(args.func)


def test_metrics_of_the_real_stream_worker_are_understood(pipeline_ledger, policy):
    """streams/metrics.py's exposition, scraped: events in per topic, its latency histogram, no clash."""
    import streams.metrics as metrics_module
    worker_metrics = metrics_module.Metrics()
    worker_metrics.events_in.inc("compute-purchases", by=120)
    worker_metrics.events_in.inc("model-invoices", by=30)
    worker_metrics.granted.inc("compute-voucher", by=5_000)
    worker_metrics.latency.observe(0.2)

    async def scenario():
        async def serve_metrics(request):
            worker_metrics.events_in.inc("compute-purchases", by=50)
            return web.Response(text=worker_metrics.render(), content_type="text/plain")

        worker = web.Application()
        worker.router.add_get("/metrics", serve_metrics)
        async with TestServer(worker) as worker_server:
            app = build_console(pipeline_ledger["url"], policy, [str(worker_server.make_url("/metrics"))], scrape_interval=0.2)
            async with TestClient(TestServer(app)) as client:
                for _ in range(50):
                    data = await (await client.get("/api/streams")).json()
                    if any(t["events_in_per_second"] for t in data["topics"]):
                        break
                    await asyncio.sleep(0.1)
                return data, await (await client.get("/metrics")).text()

    data, text = asyncio.run(scenario())
    topics = {t["topic"]: t for t in data["topics"]}
    assert topics["compute-purchases"]["events_in_per_second"] > 0 and topics["model-invoices"]["events_in_total"] == 30
    families = parse(text)
    assert families["subsidy_granted_fen_total"].type == "gauge"  # the ledger's, by clause and fiscal year
    assert all("fiscal_year" in s.labels for s in families["subsidy_granted_fen_total"].samples)
    assert families["subsidy_worker_granted_fen_total"].samples[0].value == 5_000
    latency = [f for f in families.values() if f.type == "histogram" and f.name != "subsidy_ledger_record_delay_seconds"]
    assert latency and all(s.labels.get("worker") for f in latency for s in f.samples)
