"""Issue 27's tamper table, one test a row, on SQLite: someone with write access to the database
file drops the append-only triggers, edits, and `subsidy ledger verify --checkpoints` must tell.
(The PostgreSQL path, a superuser's ALTER TABLE ... DISABLE TRIGGER ALL: test_tamper_postgresql.py.)"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rules.exclusions import Listing
from sinks.cli import main as ledger_main
from sinks.ledger import Ledger, canonical_json, sha256_hex
from sinks.ledger.booking import entry_hash
from sinks.ledger.chain import COVERED_TABLES, fact_hash, message_key, records_digest, release_hash
from sinks.ledger.checkpoints import Checkpoint, SigningKey, against_checkpoints, generate_key, load_public_keys, make_checkpoint
from sinks.ledger.schema import GENESIS_HASH, hold_releases, holds_t
from tests.ledger.factory import TIMEZONE, purchase, run

REJECTION = {"rejection_id": "compute-purchases:0:99", "topic": "compute-purchases", "partition": 0, "offset": 99, "code": "schema", "reason": "not JSON",
             "original_text": "{", "rejected_at": "2026-01-01T00:00:00+00:00"}


class Booked:
    """A ledger with three booked batches (the middle one has the 5,000,000.00 decision), signed
    checkpoints after each, and the key's public half."""

    def __init__(self, tmp_path, url: str | None = None):
        self.url = url or f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        self.key_path = tmp_path / "checkpoint.pem"
        generate_key(self.key_path)
        self.key = SigningKey.load(self.key_path)
        self.keys = load_public_keys([f"{self.key_path}.pub"])
        self.checkpoints_file = tmp_path / "checkpoints.jsonl"
        self.ledger = Ledger.open(self.url, timezone=TIMEZONE)
        self.checkpoints: list[Checkpoint] = []
        out = run([purchase("e1", 1, "3000000.00"), purchase("e2", 2, "9000000.00"), purchase("e3", 3, "1000.00"), purchase("e4", 4, "2000.00")])
        self.payment = out.instructions[1]  # the 5,000,000.00 one, mid-chain
        self.book(out.decisions[:1], out.instructions[:1], [])
        self.book(out.decisions[1:3], out.instructions[1:3], [REJECTION])
        self.book(out.decisions[3:], out.instructions[3:], [])

    def book(self, decisions, instructions, rejections) -> None:
        self.ledger.record(decisions, instructions, rejections)
        self.checkpoints.append(make_checkpoint(self.ledger, self.key))
        self.checkpoints_file.write_text("".join(c.to_json() + "\n" for c in self.checkpoints))

    def verify(self) -> tuple[list[str], list[str]]:
        """(what the chain and the derived data show, what the checkpoints show)."""
        walk = self.ledger.verify(at={c.seq for c in self.checkpoints})
        return walk.problems, against_checkpoints(self.checkpoints, self.keys, walk.head_seq, walk.at)[0]

    def tamper(self, *statements: str, tables: tuple[str, ...]) -> None:
        with self.ledger.engine.begin() as conn:
            unlock(conn, tables)
            for statement in statements:
                conn.exec_driver_sql(statement)


def unlock(conn, tables) -> None:
    for table in tables:
        for action in ("update", "delete"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def rehash_chain(conn) -> None:
    """What an attacker who has read sinks/ledger/ does after an edit: every fact's digests and every
    chain hash recomputed with the project's own functions, the head moved to the new last hash."""
    journal = {r.seq: dict(r._mapping) for r in conn.exec_driver_sql("SELECT * FROM ledger_journal")}
    facts = {r.seq: dict(r._mapping) for r in conn.exec_driver_sql("SELECT * FROM ledger_chain_facts")}
    hashes = dict(conn.exec_driver_sql("SELECT instruction_id, content_hash FROM ledger_instructions").all())
    prev = GENESIS_HASH
    for seq in sorted(journal | facts):
        if seq in journal:
            entry = journal[seq] | {"instruction_hash": hashes[journal[seq]["instruction_id"]]}
            digest = entry_hash(prev, entry)
            conn.exec_driver_sql("UPDATE ledger_journal SET instruction_hash = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", (entry["instruction_hash"], prev, digest, seq))
        else:
            fact, body = facts[seq], {}
            for name, table in COVERED_TABLES.items():
                id_column = {"decisions": "decision_id", "rejections": "rejection_id", "holds": "instruction_id", "releases": "instruction_id"}.get(name)
                columns = f"{id_column}, {'released_on' if name == 'releases' else 'content_hash'}" if id_column else "source, event_id, content_hash"
                rows = [(r[0], release_hash(r[1]) if name == "releases" else r[1]) if id_column else (message_key(r[0], r[1]), r[2])
                        for r in conn.exec_driver_sql(f"SELECT {columns} FROM {table} WHERE chain_seq = ?", (seq,))]
                if rows:
                    body[name] = [len(rows), records_digest(rows)]
            text = canonical_json(body)
            digest = fact_hash(prev, seq, fact["kind"], fact["subject"], fact["actor"], sha256_hex(text))
            conn.exec_driver_sql("UPDATE ledger_chain_facts SET body = ?, content_hash = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", (text, sha256_hex(text), prev, digest, seq))
        prev = digest
    conn.exec_driver_sql("UPDATE ledger_chain_head SET seq = ?, head_hash = ?", (max(journal | facts), prev))


@pytest.fixture
def booked(tmp_path):
    booked = Booked(tmp_path)
    yield booked
    booked.ledger.close()


def test_an_untouched_ledger_verifies_against_its_checkpoints(booked, capsys):
    assert booked.verify() == ([], [])
    code = ledger_main(["ledger", "verify", "--ledger", booked.url, "--checkpoints", str(booked.checkpoints_file), "--public-key", f"{booked.key_path}.pub"])
    assert code == 0
    assert f"verified: 4 entries, chain head seq {booked.checkpoints[-1].seq}" in capsys.readouterr().err


def test_one_journal_amount_raised_by_one_yuan(booked, capsys):
    booked.tamper("UPDATE ledger_journal SET amount_fen = amount_fen + 100 WHERE seq = 1", tables=("ledger_journal",))
    chain, checkpoints = booked.verify()
    assert any("journal seq 1" in p and "entry hash mismatch" in p for p in chain), chain
    code = ledger_main(["ledger", "verify", "--ledger", booked.url, "--checkpoints", str(booked.checkpoints_file), "--public-key", f"{booked.key_path}.pub"])
    assert code == 1
    assert "verify: " in capsys.readouterr().err


def test_a_decision_body_changed_from_5_to_9_million(booked):
    decision = booked.payment.instruction_id
    booked.tamper("UPDATE ledger_decisions SET body = REPLACE(body, '\"granted\":\"5000000.00\"', '\"granted\":\"9000000.00\"'), granted_fen = 900000000 "
                  f"WHERE instruction_id = '{decision}'", tables=("ledger_decisions",))
    chain, _ = booked.verify()
    assert any(p.startswith("ledger_decisions ") and "content hash (of its body) expected" in p for p in chain), chain
    # its content hash recomputed too: the digest in the chain fact that covers it tells
    with booked.ledger.engine.begin() as conn:
        body = conn.exec_driver_sql(f"SELECT body FROM ledger_decisions WHERE instruction_id = '{decision}'").scalar_one()
        conn.exec_driver_sql(f"UPDATE ledger_decisions SET content_hash = ? WHERE instruction_id = '{decision}'", (sha256_hex(canonical_json(json.loads(body))),))
    chain, _ = booked.verify()
    assert any(p.startswith("ledger_decisions: the rows covered by chain seq") and "differ from its digest" in p for p in chain), chain
    assert any("amount (granted by decision" in p and "expected 9000000.00, found 5000000.00" in p for p in chain), chain


def test_one_rejection_row_deleted(booked):
    booked.tamper("DELETE FROM ledger_rejections", tables=("ledger_rejections",))
    chain, _ = booked.verify()
    assert any(p.startswith("ledger_rejections rows covered by chain seq") and "count expected 1, found 0: a row was removed" in p for p in chain), chain


def test_the_newest_entry_deleted_with_its_cap_charges_and_the_chain_head_adjusted(booked):
    """The last batch (one payment) removed whole: its journal entry, instruction, cap charges, its
    decision and the fact covering it; cap usage given back and the head set to the entry before.
    The chain is consistent again, and only the checkpoint made after that batch tells."""
    with booked.ledger.engine.connect() as conn:
        last = conn.exec_driver_sql("SELECT seq, instruction_id, prev_hash, amount_fen FROM ledger_journal ORDER BY seq DESC LIMIT 1").one()
    booked.tamper(
        f"UPDATE ledger_cap_usage SET used = used - {last.amount_fen} WHERE scope IN (SELECT scope FROM ledger_cap_charges WHERE instruction_id = '{last.instruction_id}')",
        f"DELETE FROM ledger_cap_charges WHERE instruction_id = '{last.instruction_id}'",
        "DELETE FROM ledger_cap_usage WHERE scope NOT IN (SELECT scope FROM ledger_cap_charges)",  # its payee's own cap
        f"DELETE FROM ledger_chain_facts WHERE seq > {last.seq}",
        f"DELETE FROM ledger_decisions WHERE instruction_id = '{last.instruction_id}'",
        f"DELETE FROM ledger_journal WHERE seq = {last.seq}",
        f"DELETE FROM ledger_instructions WHERE instruction_id = '{last.instruction_id}'",
        f"UPDATE ledger_chain_head SET seq = {last.seq - 1}, head_hash = '{last.prev_hash}'",
        tables=("ledger_cap_charges", "ledger_chain_facts", "ledger_decisions", "ledger_journal", "ledger_instructions"),
    )
    chain, checkpoints = booked.verify()
    assert chain == []  # "hash chain intact": what the issue found
    final = booked.checkpoints[-1]
    assert checkpoints == [f"checkpoint at seq {final.seq} of {final.time}: the chain ends at seq {last.seq - 1}: 2 entries it covered were removed"]


def test_a_payment_in_mid_chain_lowered_and_the_chain_rehashed_with_the_projects_own_functions(booked):
    """Lowered by 1,000,000.00 everywhere it shows (instruction, journal, decision, cap charges and
    usage), every digest and hash recomputed: the database agrees with itself; the signatures do not."""
    iid, lower = booked.payment.instruction_id, 100_000_000
    granted = booked.ledger.granted_totals()["compute-voucher"][2026]
    with booked.ledger.engine.begin() as conn:
        unlock(conn, ("ledger_instructions", "ledger_journal", "ledger_decisions", "ledger_cap_charges", "ledger_chain_facts"))
        for table, column, id_column in (("ledger_instructions", "amount_fen", "instruction_id"), ("ledger_decisions", "granted_fen", "instruction_id")):
            body = json.loads(conn.exec_driver_sql(f"SELECT body FROM {table} WHERE {id_column} = ?", (iid,)).scalar_one())
            body["amount" if "amount" in body else "granted"] = body["computation"]["granted"] = "4000000.00"
            conn.exec_driver_sql(f"UPDATE {table} SET body = ?, content_hash = ?, {column} = {column} - {lower} WHERE {id_column} = ?",
                                 (canonical_json(body), sha256_hex(canonical_json(body)), iid))
        conn.exec_driver_sql(f"UPDATE ledger_journal SET amount_fen = amount_fen - {lower} WHERE instruction_id = ?", (iid,))
        conn.exec_driver_sql(f"UPDATE ledger_cap_usage SET used = used - {lower} WHERE scope IN (SELECT scope FROM ledger_cap_charges WHERE instruction_id = ?)", (iid,))
        conn.exec_driver_sql(f"UPDATE ledger_cap_charges SET delta = delta - {lower} WHERE instruction_id = ?", (iid,))
        rehash_chain(conn)
    chain, checkpoints = booked.verify()
    assert chain == []
    assert booked.ledger.granted_totals()["compute-voucher"][2026] == granted - lower
    # every checkpoint from the lowered payment's batch on names the changed head
    assert len(checkpoints) == 2 and all("head hash expected" in p and "re-hashed" in p for p in checkpoints), checkpoints


def test_the_entries_after_the_last_checkpoint_are_reported_not_covered(booked, capsys):
    later = run([purchase("e9", 9, "500.00")])
    booked.ledger.record(later.decisions, later.instructions, [])  # a journal entry and the fact covering its decision
    last = booked.checkpoints[-1]
    code = ledger_main(["ledger", "verify", "--ledger", booked.url, "--checkpoints", str(booked.checkpoints_file), "--public-key", f"{booked.key_path}.pub"])
    assert code == 0
    assert f"2 entries after the last checkpoint at seq {last.seq} are not covered" in capsys.readouterr().out


def test_a_checkpoint_altered_or_signed_by_another_key_counts_for_nothing(booked, tmp_path):
    forged = booked.checkpoints[-1]
    booked.checkpoints[-1] = Checkpoint(forged.seq, "0" * 64, forged.entries, forged.time, forged.key_id, forged.signature)
    _, checkpoints = booked.verify()
    assert checkpoints == [f"checkpoint at seq {forged.seq}: its signature does not verify with key {forged.key_id}: the checkpoint was altered"]
    generate_key(tmp_path / "other.pem")
    other = make_checkpoint(booked.ledger, SigningKey.load(tmp_path / "other.pem"))
    problems, _ = against_checkpoints([other], booked.keys, other.seq, {other.seq: (other.head_hash, other.entries)})
    assert problems == [f"checkpoint at seq {other.seq}: signed by key {other.key_id}, which is not a key given to check it"]


def test_derived_rows_are_recomputed_and_the_first_difference_named(booked):
    booked.tamper("UPDATE ledger_cap_usage SET used = used - 1 WHERE scope LIKE '%programme-year%'",
                  "INSERT INTO ledger_accounts VALUES ('payable:mallory', 'payable', NULL, NULL, NULL, 'mallory', 'person', 'Mallory')",
                  "INSERT INTO ledger_decisions SELECT 'forged', event_id, source, clause_id, fiscal_year, outcome, granted_fen, NULL, content_hash, body, recorded_at, NULL "
                  "FROM ledger_decisions LIMIT 1", tables=())
    chain, _ = booked.verify()
    assert "ledger_decisions forged: is in no fact of the chain: the row was added" in chain
    assert any(p.startswith('ledger_cap_usage ["cap", "compute-voucher", "programme-year", "2026"]: used expected ') for p in chain), chain
    assert "ledger_accounts payable:mallory: no instruction books to it: the row was added" in chain


def test_rows_stored_before_the_chain_covered_them_are_covered_by_the_migration(tmp_path):
    """A ledger at 0007 with a decision and a rejection: 0008 appends one fact covering both."""
    from alembic import command

    from sinks.ledger import make_engine
    from sinks.ledger.database import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    decision = run([purchase("e1", 1, "3000000.00")]).decisions[0].to_wire()
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0007_bank_answers")
        conn.exec_driver_sql("INSERT INTO ledger_decisions VALUES (?, ?, ?, ?, ?, 'declined', 0, NULL, ?, ?, '2026-01-01T00:00:00+00:00')",
                             (decision["decision_id"], decision["event_id"], decision["source"], decision["clause_id"], decision["fiscal_year"],
                              sha256_hex(canonical_json(decision | {"outcome": "declined", "granted": "0.00", "instruction_id": None})),
                              canonical_json(decision | {"outcome": "declined", "granted": "0.00", "instruction_id": None})))
        conn.exec_driver_sql("INSERT INTO ledger_rejections VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00+00:00')",
                             (REJECTION["rejection_id"], REJECTION["topic"], REJECTION["code"],
                              sha256_hex(canonical_json({k: v for k, v in REJECTION.items() if k != "rejected_at"})), canonical_json(REJECTION)))
    engine.dispose()
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        assert ledger.verify().problems == []
        with ledger.engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT seq, kind FROM ledger_chain_facts").all() == [(1, "records-before-0008")]
            unlock(conn, ("ledger_rejections",))
            conn.exec_driver_sql("DELETE FROM ledger_rejections")
        assert ledger.verify().problems == ["ledger_rejections rows covered by chain seq 1 (records-before-0008 fact): count expected 1, found 0: a row was removed"]


def test_a_payee_account_changed_before_its_batch_is_found(booked):
    """A payee's verified account decides where the money goes: its number changed behind the ledger's back is named."""
    from tests.ledger.test_payments import account

    payee = booked.payment.payee.id
    booked.ledger.import_payee_accounts([account(payee)])
    booked.tamper("UPDATE ledger_payee_accounts SET account_number = '6222999999999999'", tables=("ledger_payee_accounts",))
    chain, _ = booked.verify()
    assert any(p.startswith("ledger_payee_accounts ") and "content hash (of its body) expected" in p for p in chain), chain


def exclusion(party: str, ends: dt.date | None = None) -> Listing:
    return Listing(party, "dishonest-judgment-debtor", "（2026）川01执1234号", dt.date(2026, 1, 1), ends, "chengdu-credit-platform", "x1", "2026-01-01T09:00:00+08:00")


@pytest.mark.parametrize(("tamper", "found"), [
    ("DELETE FROM ledger_hold_releases", "count expected 1, found 0: a row was removed"),  # the payee held forever
    ("UPDATE ledger_hold_releases SET released_on = '2026-03-11'", "differ from its digest: a row was replaced"),  # paid early
])
def test_a_hold_release_deleted_or_moved_earlier(booked, tamper, found):
    """A listing booked with its batch holds the mid-chain payment and releases it the day after it
    ends; the release is covered by the batch's fact."""
    iid = booked.payment.instruction_id
    booked.ledger.record([], [], [], listings=[exclusion(booked.payment.beneficiary.id, ends=dt.date(2026, 9, 30))])
    assert [(h["instruction_id"], h["released_on"]) for h in booked.ledger.holds(released=True)] == [(iid, "2026-10-01")]
    assert booked.verify()[0] == []
    booked.tamper(tamper, tables=("ledger_hold_releases",))
    chain, _ = booked.verify()
    assert any(p.startswith("ledger_hold_releases rows covered by chain seq" if "count" in found else "ledger_hold_releases: the rows covered by chain seq")
               and found in p for p in chain), chain


def test_a_hold_deleted_and_another_added(booked):
    """A hold made on its own (``hold()``) is covered by a fact of its own: deleted, its payment would be
    paid; one added behind the ledger's back, a payment nobody held would wait."""
    iid = booked.payment.instruction_id
    with booked.ledger.engine.connect() as conn:
        other = conn.exec_driver_sql("SELECT instruction_id FROM ledger_instructions WHERE instruction_id <> ? LIMIT 1", (iid,)).scalar_one()
    assert booked.ledger.hold(iid, exclusion(booked.payment.beneficiary.id), dt.date(2026, 3, 10))
    with booked.ledger.engine.connect() as conn:
        seq = conn.exec_driver_sql("SELECT chain_seq FROM ledger_holds").scalar_one()
    assert booked.verify()[0] == []
    booked.tamper(f"INSERT INTO ledger_holds SELECT '{other}', listed_party, list, reference, held_from, content_hash, body, recorded_at, NULL FROM ledger_holds",
                  f"DELETE FROM ledger_holds WHERE instruction_id = '{iid}'", tables=("ledger_holds",))
    chain, _ = booked.verify()
    assert f"ledger_holds rows covered by chain seq {seq} (records-booked fact): count expected 1, found 0: a row was removed" in chain, chain
    assert f"ledger_holds {other}: is in no fact of the chain: the row was added" in chain, chain


def test_holds_stored_before_they_were_chained_are_covered_by_the_migration(tmp_path):
    """A ledger at 0009 with a held and released payment: 0010 appends one fact covering both."""
    from alembic import command

    from sinks.ledger import make_engine
    from sinks.ledger.database import _alembic_config
    from sinks.ledger.holds import _hold_row

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0009_chain_facts")
    engine.dispose()
    out = run([purchase("e1", 1, "3000.00")])
    with Ledger.open(url, timezone=TIMEZONE, upgrade=False) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        payment = out.instructions[0]
        with ledger.engine.begin() as conn:
            conn.execute(holds_t.insert().values(**_hold_row(payment.instruction_id, exclusion(payment.beneficiary.id), dt.date(2026, 3, 10))[1], recorded_at="2026-03-10"))
            conn.execute(hold_releases.insert().values(instruction_id=payment.instruction_id, released_on="2026-10-01", recorded_at="2026-03-10"))
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        assert ledger.verify().problems == []
        with ledger.engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT seq, kind FROM ledger_chain_facts").all() == [(2, "records-booked"), (3, "holds-before-0010")]
            unlock(conn, ("ledger_hold_releases",))
            conn.exec_driver_sql("DELETE FROM ledger_hold_releases")
        assert ledger.verify().problems == ["ledger_hold_releases rows covered by chain seq 3 (holds-before-0010 fact): count expected 1, found 0: a row was removed"]
