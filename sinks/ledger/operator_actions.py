"""Operators' actions (the console's holds and releases of a payee, console/users.py; a void
requested with ``subsidy payments void``, sinks/ledger/bank_answers.py) as entries
of the journal's hash chain: each row of ``operator_actions`` is written with an entry of kind
``operator-action`` in ``ledger_chain_events`` whose body is the row and whose actor is the
operator, in one transaction under the chain-head lock (as the payments' events are). So
``verify_chain`` finds an action edited, removed, or added behind the console's back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sinks.ledger.payments import Payments
from sinks.ledger.schema import chain_events, operator_actions

KIND = "operator-action"
COLUMNS = tuple(column.name for column in operator_actions.columns)


def action_name(body: str, actor: str) -> str:
    """How an action's chain entry is named in a problem found: what was done, to whom, by whom."""
    try:
        held = json.loads(body)
        return f"{KIND} {held['action']} of {held['subject']} by {actor}"
    except (ValueError, TypeError, KeyError):  # an edited body: the entry's hash tells
        return f"{KIND} by {actor}"


def action_row(user_name: str, role: str, action: str, subject: str, reason: str) -> dict[str, Any]:
    return {"action_id": str(uuid.uuid4()), "user_name": user_name, "role": role, "action": action, "subject": subject,
            "reason": reason, "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat()}


def append_action(conn: Connection, head: tuple[int, str], row: dict[str, Any]) -> tuple[int, str]:
    """Append an action's row and its chain entry, under the chain-head lock the caller holds; the new head."""
    conn.execute(operator_actions.insert(), row)
    return Payments._chain(conn, head, KIND, None, row["user_name"], row, row["recorded_at"])


class OperatorActions(Payments):
    def record_operator_action(self, user_name: str, role: str, action: str, subject: str, reason: str) -> dict[str, Any]:
        """Append the action and its chain entry; the row as stored."""
        row = action_row(user_name, role, action, subject, reason)

        def write() -> None:
            with self.engine.begin() as conn:
                append_action(conn, self._lock(conn), row)

        self._with_retry(write)
        return row

    def verify_operator_actions(self) -> list[str]:
        """Each action against the chain entry that holds it (the entries' own hashes are ``verify_chain``'s)."""
        with self.engine.connect() as conn:
            entries = conn.execute(sa.select(chain_events.c.seq, chain_events.c.actor, chain_events.c.body)
                                   .where(chain_events.c.kind == KIND).order_by(chain_events.c.seq)).all()
            rows = {row["action_id"]: dict(row) for row in conn.execute(sa.select(operator_actions)).mappings()}
        problems = []
        for entry in entries:
            held = json.loads(entry.body)
            row = rows.pop(held["action_id"], None)
            where = f"chain seq {entry.seq} ({action_name(entry.body, entry.actor)})"
            if row is None:
                problems.append(f"{where}: the action is missing from operator_actions: it was removed")
            elif row != held or entry.actor != row["user_name"]:
                changed = ", ".join(name for name in COLUMNS if row.get(name) != held.get(name)) or "actor"
                problems.append(f"{where}: operator_actions differs ({changed}): the row was edited")
        problems.extend(f"operator action {action_id} ({row['action']} of {row['subject']} by {row['user_name']}) is not in the hash chain: it was added"
                        for action_id, row in sorted(rows.items()))
        return problems
