"""Payment holds and their releases in the hash chain (issue 27): each names the
``ledger_chain_facts`` entry that covers it (``chain_seq``), as the listings that call for them do.
Rows stored before this revision have none: one fact, appended here, covers them all (the forms
are sinks/ledger/chain.py's, written out: a migration is history and imports no definitions).

Revision ID: 0010_holds_chained
Revises: 0009_chain_facts
Create Date: 2026-12-06
"""

import datetime as dt
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0010_holds_chained"
down_revision = "0009_chain_facts"
branch_labels = None
depends_on = None

COVERED = ("ledger_holds", "ledger_hold_releases")


def upgrade() -> None:
    for table in COVERED:  # ADD COLUMN touches no row: the append-only triggers stay as they are
        op.add_column(table, sa.Column("chain_seq", sa.BigInteger))
    _cover_rows_stored_before()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cover_rows_stored_before() -> None:
    conn = op.get_bind()
    holds = [[iid, content_hash] for iid, content_hash in conn.exec_driver_sql("SELECT instruction_id, content_hash FROM ledger_holds")]
    # a release stores no content hash: its day is all it says
    releases = [[iid, _sha256(_canonical({"released_on": day}))] for iid, day in conn.exec_driver_sql("SELECT instruction_id, released_on FROM ledger_hold_releases")]
    body = {name: [len(rows), _sha256(_canonical(sorted(rows)))] for name, rows in (("holds", holds), ("releases", releases)) if rows}
    if not body:
        return
    head_seq, head_hash = conn.exec_driver_sql("SELECT seq, head_hash FROM ledger_chain_head WHERE id = 1").one()
    seq, kind, subject, actor = int(head_seq) + 1, "holds-before-0010", "migration", "ledger"
    text = _canonical(body)
    content_hash = _sha256(text)
    entry_hash = _sha256(head_hash + "\n" + _canonical([seq, "fact", kind, subject, actor, content_hash]))
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    conn.execute(sa.text("INSERT INTO ledger_chain_facts (seq, kind, subject, actor, body, content_hash, prev_hash, entry_hash, recorded_at) "
                         "VALUES (:seq, :kind, :subject, :actor, :body, :content_hash, :prev_hash, :entry_hash, :recorded_at)"),
                 {"seq": seq, "kind": kind, "subject": subject, "actor": actor, "body": text, "content_hash": content_hash,
                  "prev_hash": head_hash, "entry_hash": entry_hash, "recorded_at": now})
    conn.execute(sa.text("UPDATE ledger_chain_head SET seq = :seq, head_hash = :head_hash WHERE id = 1"), {"seq": seq, "head_hash": entry_hash})


def downgrade() -> None:
    for table in COVERED:
        op.drop_column(table, "chain_seq")
