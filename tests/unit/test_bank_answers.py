"""The bank's side of ISO 20022 without a database: EndToEndIds of re-issues, the simulator's
files (valid against their XSDs, the same for a seed), answers read back, refusals, and a
statement's differences with the ledger."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sinks.bank_sim import answer
from sinks.export import batch_pain001
from sinks.iso20022_answers import (
    AnswerFileError,
    StatementEntry,
    camt054,
    end_to_end_id,
    pain002,
    parse_end_to_end_id,
    read_answers,
    read_statement,
    statement_differences,
)
from sinks.ledger.payments import BatchItem

UUID = "8f14e45f-ceea-167a-5a36-dedd4bea2543"


def pain001(n: int = 100) -> bytes:
    items = [BatchItem(f"{k:08x}-0000-4000-8000-{k:012x}", f"P{k}", "enterprise", 10_000 + k, "收款人", f"62220210{k:08d}", "102651020012",
                       "chengdu-ai-2025", "compute-voucher", 2026, "2026-03-10", k % 3) for k in range(n)]
    state = SimpleNamespace(batch_id="PB000009", number_of_transactions=n, control_sum_fen=sum(i.amount_fen for i in items))
    return batch_pain001(state, items, created_at="2026-04-01T09:00:00+08:00", execution_date="2026-04-01")


def test_an_end_to_end_id_maps_one_to_one_to_an_instruction_and_its_sending():
    ids = [end_to_end_id(UUID, n) for n in range(100)]
    assert ids[0] == UUID.replace("-", "") and ids[1] == ids[0] + "R1" and len(ids[99]) == 35 and len(set(ids)) == 100
    assert [parse_end_to_end_id(i) for i in ids] == [(ids[0], n) for n in range(100)]
    assert parse_end_to_end_id(ids[0] + "R0") is None and parse_end_to_end_id("PB1") is None
    with pytest.raises(ValueError, match="beyond the 99"):
        end_to_end_id(UUID, 100)


def test_the_simulated_bank_answers_at_its_rates_the_same_for_a_seed():
    data = pain001()
    files = answer(data, reject_rate=0.01, return_rate=0.02, seed=3)
    assert (files.rejected, files.returned, files.settled) == (1, 2, 99)
    assert answer(data, reject_rate=0.01, return_rate=0.02, seed=3) == files
    assert answer(data, reject_rate=0.01, return_rate=0.02, seed=4).pain002 != files.pain002
    status = read_answers(files.pain002)
    assert status.kind == "pain.002" and [a.status for a in status.answers].count("rejected") == 1
    [rejected] = [a for a in status.answers if a.status == "rejected"]
    assert rejected.reason_code in ("AC01", "AC04", "AC06") and parse_end_to_end_id(rejected.end_to_end_id) is not None
    booked = read_answers(files.camt054).answers
    assert sorted(a.status for a in booked).count("returned") == 2 and all(a.occurred_at == "2026-04-01T00:00:00+08:00" for a in booked)
    _, days, entries = read_statement(files.camt053)
    assert days == {"2026-04-01"} and len(entries) == 101
    message = booked[-1].message("bank-file:camt.054")
    assert message["status"] == "returned" and message["reason_code"] and message["amount"].count(".") == 1


def test_a_file_not_an_answer_is_refused_in_one_line():
    with pytest.raises(AnswerFileError, match="not pain.002 or camt.054"):
        read_answers(pain001(2))
    with pytest.raises(AnswerFileError, match="not well-formed"):
        read_answers(b"<Document")
    whole = pain002("S1", "2026-04-01T10:00:00+08:00", "PB000001", []).replace(b"</OrgnlNbOfTxs>", b"</OrgnlNbOfTxs><GrpSts>RJCT</GrpSts>")
    with pytest.raises(AnswerFileError, match="group status RJCT of message PB000001 with no status per transaction"):
        read_answers(whole)
    bad = camt054("N1", "2026-04-01T18:00:00+08:00", "1", [(UUID.replace("-", ""), 100, "2026-04-01", None)]).replace(b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>OUT</CdtDbtInd>", 1)
    with pytest.raises(AnswerFileError, match="does not validate against camt.054.001.08.xsd"):
        read_answers(bad)


def test_every_difference_between_a_statement_and_the_ledger_is_listed():
    statement = [StatementEntry("A", "DBIT", 100, "2026-04-01", None), StatementEntry("B", "DBIT", 200, "2026-04-01", None),
                 StatementEntry("C", "CRDT", 300, "2026-04-01", "AC04")]
    ledger = [("A", "DBIT", 100), ("B", "DBIT", 250), ("D", "DBIT", 400)]
    assert statement_differences(statement, ledger) == [
        "payment B: 2.00 CNY on the statement, 2.50 CNY in the ledger",
        "return C: on the statement (3.00 CNY), not in the ledger",
        "payment D: in the ledger (4.00 CNY), not on the statement",
    ]
    assert statement_differences(statement[:1], ledger[:1]) == []
