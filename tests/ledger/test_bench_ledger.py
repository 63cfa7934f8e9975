"""The ledger benchmark's every-row baseline inserts the rows a ledger run stored, into the same schema."""

from __future__ import annotations

import json

import pytest

from bench import bench_ledger


@pytest.mark.integration
def test_every_row_baseline_inserts_what_the_ledger_stored(postgres_url, capsys):
    # The baseline itself asserts that every table ends with as many rows as the ledger stored.
    assert bench_ledger.main(["--n", "300", "--batch", "100", "--repeat", "1", "--json", "--url", postgres_url]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ledger_record"]["stored"]["instructions"] == 300
    # An instruction comes with its decision, a journal entry and at least one cap charge.
    assert result["bare_insert_every_row"]["rows"] >= 4 * 300
    assert result["ratio_to_every_row"] > 0
