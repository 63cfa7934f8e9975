"""Queries of the ledger: what was granted, counts, stored instructions, journal entries,
account balances, cap usage, and single decisions and instructions by id."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from sinks.ledger.booking import payable_account
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.receivables import offset_entries
from sinks.ledger.schema import accounts, cap_usage, decisions_t, instructions_t, journal, rejections_t


class Queries(LedgerDatabase):
    """Read-only queries, each on a connection of its own."""

    def granted_totals(self) -> dict[str, dict[int, int]]:
        """clause_id -> fiscal_year -> net fen granted (payments minus clawbacks), from the journal."""
        signed = sa.case((journal.c.entry_kind == "payment", journal.c.amount_fen), else_=-journal.c.amount_fen)
        query = sa.select(journal.c.clause_id, journal.c.fiscal_year, sa.func.sum(signed)).group_by(journal.c.clause_id, journal.c.fiscal_year)
        out: dict[str, dict[int, int]] = {}
        with self.engine.connect() as conn:
            for clause_id, year, total in conn.execute(query):
                out.setdefault(clause_id, {})[int(year)] = int(total)
        return out

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "decisions": conn.execute(sa.select(sa.func.count()).select_from(decisions_t)).scalar_one(),
                "instructions": conn.execute(sa.select(sa.func.count()).select_from(instructions_t)).scalar_one(),
                "rejections": conn.execute(sa.select(sa.func.count()).select_from(rejections_t)).scalar_one(),
            }

    def instructions(self, *, date_from: str | None = None, date_to: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored instruction dicts (value date, in the policy's time zone, within [date_from, date_to]), in journal order."""
        return [body for (_, body) in self.dated_instructions(date_from=date_from, date_to=date_to, kind=kind)]

    def dated_instructions(self, *, date_from: str | None = None, date_to: str | None = None, kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(value date as booked, instruction dict) of :meth:`instructions`."""
        query = sa.select(instructions_t.c.value_date, instructions_t.c.body).order_by(instructions_t.c.journal_seq)
        if date_from:
            query = query.where(instructions_t.c.value_date >= date_from)
        if date_to:
            query = query.where(instructions_t.c.value_date <= date_to)
        if kind:
            query = query.where(instructions_t.c.kind == kind)
        with self.engine.connect() as conn:
            return [(value_date, json.loads(body)) for (value_date, body) in conn.execute(query)]

    def has_payee(self, payee_id: str) -> bool:
        """Whether any instruction ever named this payee (its payable account exists)."""
        query = sa.select(accounts.c.account_id).where(accounts.c.account_id == payable_account(payee_id))
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def journal_entries(self, *, payee_id: str | None = None, fiscal_year: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(journal).order_by(journal.c.seq)
        if payee_id is not None:
            query = query.where(journal.c.payee_id == payee_id)
        if fiscal_year is not None:
            query = query.where(journal.c.fiscal_year == fiscal_year)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def account_balances(self, fiscal_year: int | None = None) -> dict[str, int]:
        """account_id -> balance in fen (debits minus credits: budget accounts show what was spent,
        payable accounts show minus what is owed); with every year's offsets (sinks/ledger/receivables.py)
        when no year is given: an offset nets receivables of any year."""
        entries = [(e["debit_account"], e["credit_account"], int(e["amount_fen"])) for e in self.journal_entries(fiscal_year=fiscal_year)]
        if fiscal_year is None:
            with self.engine.connect() as conn:
                entries += offset_entries(conn)
        balances: dict[str, int] = {}
        for debit, credit, amount in entries:
            balances[debit] = balances.get(debit, 0) + amount
            balances[credit] = balances.get(credit, 0) - amount
        return dict(sorted(balances.items()))

    def cap_usage(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {row.scope: {"kind": row.kind, "limit": int(row.cap_limit), "used": int(row.used)} for row in conn.execute(sa.select(cap_usage))}

    def ids_starting_with(self, prefix: str, limit: int = 10) -> list[tuple[str, str]]:
        """("decision" | "instruction", id) of up to ``limit`` records whose id starts with ``prefix``."""
        found: list[tuple[str, str]] = []
        with self.engine.connect() as conn:
            for kind, column in (("decision", decisions_t.c.decision_id), ("instruction", instructions_t.c.instruction_id)):
                query = sa.select(column).where(column.startswith(prefix, autoescape=True)).order_by(column).limit(limit)
                found.extend((kind, record_id) for record_id in conn.scalars(query))
        return found[:limit]

    def instruction_body(self, instruction_id: str) -> dict[str, Any] | None:
        query = sa.select(instructions_t.c.body).where(instructions_t.c.instruction_id == instruction_id)
        with self.engine.connect() as conn:
            body = conn.scalar(query)
        return None if body is None else dict(json.loads(body))

    def decision_body(self, decision_id: str) -> dict[str, Any] | None:
        return self._decision_where(decisions_t.c.decision_id == decision_id)

    def decision_paying(self, clause_id: str, fiscal_year: int, instruction_id: str) -> dict[str, Any] | None:
        """The decision whose instruction this is (a clawback's decision has the year of the payment it corrects)."""
        return self._decision_where(decisions_t.c.clause_id == clause_id, decisions_t.c.fiscal_year == fiscal_year, decisions_t.c.instruction_id == instruction_id)

    def decision_of_event(self, clause_id: str, fiscal_year: int, source: str, event_id: str) -> dict[str, Any] | None:
        return self._decision_where(decisions_t.c.clause_id == clause_id, decisions_t.c.fiscal_year == fiscal_year,
                                    decisions_t.c.source == source, decisions_t.c.event_id == event_id)

    def _decision_where(self, *conditions: sa.ColumnElement[bool]) -> dict[str, Any] | None:
        # by clause and year where the caller knows them: the index the table has
        with self.engine.connect() as conn:
            body = conn.scalar(sa.select(decisions_t.c.body).where(*conditions))
        return None if body is None else dict(json.loads(body))
