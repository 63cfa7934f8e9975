"""Operators' holds and releases in the journal's hash chain (sinks/ledger/operator_actions.py,
migration 0008): each action is an entry with the operator's name, interleaved with the journal's
and the payments' entries; one edited, removed or added behind the console's back is found, and
the actions recorded before 0008 are chained by the migration."""

from __future__ import annotations

import sqlalchemy as sa

from sinks.ledger import Ledger, make_engine
from sinks.ledger.database import _alembic_config
from tests.ledger.factory import TIMEZONE, purchase, run

PAYEE = "91510100MA6C0000X1"


def chain_kinds(ledger: Ledger) -> list[tuple[int, str, str]]:
    with ledger.engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql("SELECT seq, kind, actor FROM ledger_chain_events ORDER BY seq")]


def test_each_action_is_a_chain_entry_and_tampering_is_found(tmp_path):
    out = run([purchase("e1", 1, "1000.00"), purchase("e2", 2, "2500.50")])
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions[:1], out.instructions[:1], [])
        held = ledger.record_operator_action("mark", "maker", "hold", PAYEE, "bank account under review")
        ledger.record(out.decisions[1:], out.instructions[1:], [])
        released = ledger.record_operator_action("chen", "checker", "release", PAYEE, "account confirmed")
        assert ledger.verify_chain() == []
        # each record() takes a place for its instructions, then one for the fact covering its decisions
        mark_seq, chen_seq = 1 + 1 + 1, len(out.instructions) + 2 + 2
        assert chain_kinds(ledger) == [(mark_seq, "operator-action", "mark"), (chen_seq, "operator-action", "chen")]

        with ledger.engine.begin() as conn:
            for action in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER operator_actions_no_{action}")
            conn.execute(sa.text("UPDATE operator_actions SET user_name = 'mallory' WHERE action_id = :id"), {"id": held["action_id"]})
            conn.execute(sa.text("DELETE FROM operator_actions WHERE action_id = :id"), {"id": released["action_id"]})
            conn.execute(sa.text("INSERT INTO operator_actions VALUES ('forged', 'mallory', 'checker', 'release', :payee, 'x', :at)"),
                         {"payee": PAYEE, "at": held["recorded_at"]})
        problems = ledger.verify_chain()
    assert problems == [
        f"chain seq {mark_seq} (operator-action hold of {PAYEE} by mark): operator_actions differs (user_name): the row was edited",
        f"chain seq {chen_seq} (operator-action release of {PAYEE} by chen): the action is missing from operator_actions: it was removed",
        f"operator action forged (release of {PAYEE} by mallory) is not in the hash chain: it was added",
    ]


def test_the_migration_chains_the_actions_recorded_before_it(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0007_bank_answers")
        with engine.begin() as conn:
            for n, (name, action) in enumerate((("mark", "hold"), ("chen", "release"))):
                conn.execute(sa.text("INSERT INTO operator_actions VALUES (:id, :name, 'checker', :action, :payee, 'why', :at)"),
                             {"id": f"a{n}", "name": name, "action": action, "payee": PAYEE, "at": f"2026-12-0{n + 1}T08:00:00+00:00"})
    finally:
        engine.dispose()
    with Ledger.open(url, timezone=TIMEZONE) as ledger:  # upgrades to the head
        # 0008 chains the actions (1, 2); 0009 finds no decision, rejection or listing to cover
        assert chain_kinds(ledger) == [(1, "operator-action", "mark"), (2, "operator-action", "chen")]
        assert ledger.verify_chain() == []
        ledger.record_operator_action("chao", "checker", "hold", PAYEE, "again")  # new ones follow the migrated
        assert chain_kinds(ledger)[-1] == (3, "operator-action", "chao") and ledger.verify_chain() == []
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER ledger_chain_events_no_delete")  # the migration's copy has its triggers back
            conn.exec_driver_sql("DELETE FROM ledger_chain_events WHERE seq = 2")
        problems = ledger.verify_chain()
        # the entry named by its action, not by the batch it has none of
        assert f"chain seq 3 (operator-action hold of {PAYEE} by chao): prev_hash does not match the previous entry's hash" in problems, problems
