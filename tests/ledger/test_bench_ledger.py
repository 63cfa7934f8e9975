"""The ledger benchmark's every-row baseline inserts the rows a ledger run stored, into the same schema."""

from __future__ import annotations

import json

import pytest

from bench import bench_ledger
from bench.common import fresh_database


@pytest.mark.integration
def test_every_row_baseline_inserts_what_the_ledger_stored(postgres_url, capsys):
    # The baseline itself asserts that every table ends with as many rows as the ledger stored.
    assert bench_ledger.main(["--n", "300", "--batch", "100", "--repeat", "1", "--json", "--url", postgres_url]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ledger_record"]["stored"]["instructions"] == 300
    # An instruction comes with its decision, a journal entry and at least one cap charge.
    assert result["bare_insert_every_row"]["rows"] >= 4 * 300
    assert result["ratio_to_every_row"] > 0


@pytest.fixture
def replayed_ledger(postgres_url, tmp_path):
    """A PostgreSQL ledger holding a generated sample's outputs: payments, decisions that pay
    nothing and rejections, as a pipeline's ledger does; yields (URL, inputs, counts)."""
    from rules.policy import load_policy
    from sinks.ledger import Ledger
    from subsidy.generate import generate_file
    from subsidy.replay import replay

    events = tmp_path / "year.jsonl"
    inputs = generate_file(events, 2026, seed=3, enterprises=60, events=1500)
    with fresh_database(postgres_url, prefix="bench_rows") as url:
        with Ledger.open(url, timezone=load_policy().timezone) as ledger:
            replay(events, load_policy(), ledger)
            counts = ledger.counts()
        assert counts["rejections"] > 0 and counts["decisions"] > counts["instructions"]
        yield url, inputs, counts


@pytest.mark.integration
def test_every_row_baseline_takes_the_rows_that_name_no_instruction(replayed_ledger, postgres_url):
    url, _, counts = replayed_ledger
    columns, per_batch = bench_ledger.stored_rows(url, batch=100)
    with fresh_database(postgres_url, prefix="bench_rows") as target:
        bench_ledger.bench_bare_every_row(target, columns, per_batch)  # asserts every table's count
    spread = [len(tables["ledger_rejections"]) for tables in per_batch]
    assert sum(spread) == counts["rejections"] and max(spread) - min(spread) <= 1


@pytest.mark.integration
def test_storage_alone_stores_what_the_pipeline_ledger_holds(replayed_ledger, postgres_url):
    # bench_pipeline.py's (e) and (f); (f) asserts that the sink booked exactly what was there.
    from bench.bench_pipeline import run_storage_alone

    url, inputs, _ = replayed_ledger
    bare, sink = run_storage_alone(url, inputs, postgres_url)
    # about as many transactions as the pipeline's stage batches of 500 inputs
    assert bare["transactions"] == sink["transactions"]
    assert abs(bare["transactions"] - inputs / 500) <= 1
    assert bare["events_per_s"] > 0 and sink["events_per_s"] > 0
