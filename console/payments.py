"""The console's Payments page, read from the ledger: batches and who proposed and approved them,
where the batched payments stand, what awaits an account, the bank's rejections and returns, and
what payees owe back; and each payee's payments with where each stands.

Read through the console's read-only engine with the ledger's own queries (sinks/ledger), so
the page says what ``subsidy payments`` and ``subsidy ledger receivables`` say.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rules.money import format_fen
from sinks.ledger import Ledger
from sinks.ledger.bank_answers import void_requests
from sinks.ledger.payments import Account, current_accounts
from sinks.ledger.receivables import open_receivables
from sinks.ledger.schema import PAYMENT_STATUSES, accounts, batch_items, hold_releases, holds_t, instructions_t, offsets, payee_accounts, payment_events, payment_voids

#: the bank's answers that send a payment back (pain.002, camt.054); the ``bank`` work may add tables
BANK_REFUSALS = ("rejected", "returned")
_RANK = sa.case({status: rank for rank, status in enumerate(PAYMENT_STATUSES)}, value=payment_events.c.status)


def latest_states(conn: Connection, instruction_ids: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """instruction id -> (its furthest status, the batch), from ``ledger_payment_events``; of
    ``instruction_ids`` only when given."""
    query = sa.select(payment_events.c.instruction_id, payment_events.c.batch_id, _RANK.label("rank"))
    if instruction_ids is not None:
        query = query.where(payment_events.c.instruction_id.in_(instruction_ids))
    furthest: dict[str, tuple[int, str]] = {}
    for iid, batch_id, rank in conn.execute(query):
        if iid not in furthest or (batch_id, rank) > (furthest[iid][1], furthest[iid][0]):  # a later batch (a re-issue) wins
            furthest[iid] = (int(rank), batch_id)
    return {iid: (PAYMENT_STATUSES[rank], batch_id) for iid, (rank, batch_id) in furthest.items()}


def state_totals(conn: Connection) -> list[dict[str, Any]]:
    """Batched payments by their furthest status: how many, how much (as paid: netted); then the
    voided payments, batched or not (as decided)."""
    voided = sa.exists().where(payment_voids.c.instruction_id == batch_items.c.instruction_id)
    inner = (sa.select(batch_items.c.amount_fen, sa.func.max(_RANK).label("rank"))
             .join(payment_events, sa.and_(payment_events.c.instruction_id == batch_items.c.instruction_id, payment_events.c.batch_id == batch_items.c.batch_id))
             .where(~voided).group_by(batch_items.c.batch_id, batch_items.c.instruction_id, batch_items.c.amount_fen)).subquery()
    rows = conn.execute(sa.select(inner.c.rank, sa.func.count(), sa.func.sum(inner.c.amount_fen)).group_by(inner.c.rank).order_by(inner.c.rank)).all()
    totals = [(PAYMENT_STATUSES[int(rank)], int(count), int(total)) for rank, count, total in rows]
    count, total = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(instructions_t.c.amount_fen), 0))
                                .join(payment_voids, payment_voids.c.instruction_id == instructions_t.c.instruction_id)).one()
    totals += [("voided", int(count), int(total))] if count else []
    return [{"state": state, "payments": count, "amount_fen": total, "amount": format_fen(total)} for state, count, total in totals]


def bank_refusals(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest rejections and returns the bank answered, with their ISO reason codes."""
    e, b = payment_events.c, batch_items.c
    rows = conn.execute(sa.select(e.instruction_id, e.batch_id, e.status, e.at, e.reason_code, b.payee_id, b.amount_fen)
                        .join(batch_items, sa.and_(b.instruction_id == e.instruction_id, b.batch_id == e.batch_id))
                        .where(e.status.in_(BANK_REFUSALS)).order_by(e.at.desc(), e.instruction_id).limit(limit)).all()
    return [{"instruction_id": r.instruction_id, "batch_id": r.batch_id, "status": r.status, "at": r.at, "reason_code": r.reason_code,
             "payee_id": r.payee_id, "amount_fen": int(r.amount_fen), "amount": format_fen(int(r.amount_fen))} for r in rows]


def payments_overview(engine: Engine, timezone: str, today: dt.date, limit: int) -> dict[str, Any]:
    ledger = Ledger(engine, timezone=timezone)
    batches = ledger.batches()
    awaiting = ledger.awaiting_account()
    receivables = ledger.receivables(today.isoformat())
    with engine.connect() as conn:
        states = state_totals(conn)
        refusals = bank_refusals(conn, limit)
    newest = sorted(batches, key=lambda b: b.batch_id, reverse=True)[:limit]
    return {
        "as_of": today.isoformat(),
        "awaiting_approval": sum(1 for b in batches if b.status == "proposed"),
        "batches": [{"batch_id": b.batch_id, "status": b.status, "maker": b.maker, "proposed_at": b.proposed_at, "approvers": b.approvers,
                     "approvals_required": b.approvals_required, "clause_id": b.clause_id, "until_date": b.until_date, "sent_at": b.sent_at,
                     "payments": b.number_of_transactions, "control_sum_fen": b.control_sum_fen, "control_sum": format_fen(b.control_sum_fen)} for b in newest],
        "states": states,
        "awaiting_account": {"payments": sum(a.payments for a in awaiting), "total_fen": sum(a.amount_fen for a in awaiting), "total": format_fen(sum(a.amount_fen for a in awaiting)),
                             "payees": [{"payee_id": a.payee_id, "payee_name": a.payee_name, "payments": a.payments, "amount_fen": a.amount_fen, "amount": format_fen(a.amount_fen)}
                                        for a in sorted(awaiting, key=lambda a: (-a.amount_fen, a.payee_id))[:limit]]},
        "bank_refusals": refusals,
        "receivables": {**receivables.to_json(), "total_fen": receivables.total_fen, "payees": receivables.to_json()["payees"][:limit]},
    }


def payee_payments(engine: Engine, payee_id: str, today: dt.date, limit: int) -> dict[str, Any] | None:
    """A payee's instructions, newest first, each with where it stands: a payment ``voided``,
    ``void requested``, ``sent`` (or the furthest status of its batch), ``netted`` whole, ``held``,
    ``awaiting account`` or ``decided``; a clawback ``owed back``, ``recovered`` or ``payment
    voided`` (nothing owed: the payment never reached the payee). None for a payee the ledger never named."""
    i = instructions_t.c
    with engine.connect() as conn:
        name = conn.execute(sa.select(accounts.c.name).where(accounts.c.account_id == "payable:" + payee_id)).scalar()
        if name is None:
            return None
        rows = conn.execute(sa.select(i.instruction_id, i.kind, i.corrects, i.clause_id, i.fiscal_year, i.value_date, i.amount_fen)
                            .where(i.payee_id == payee_id).order_by(i.journal_seq.desc()).limit(limit)).all()
        ids = [r.instruction_id for r in rows]
        states = latest_states(conn, ids)
        paid = {iid: int(fen) for iid, fen in conn.execute(sa.select(batch_items.c.instruction_id, batch_items.c.amount_fen).where(batch_items.c.instruction_id.in_(ids)))}
        netted: dict[str, tuple[int, str]] = {}
        for payment_id, clawback_id, amount, batch_id in conn.execute(sa.select(offsets.c.payment_id, offsets.c.clawback_id, offsets.c.amount_fen, offsets.c.batch_id).where(offsets.c.payee_id == payee_id)):
            for iid in (payment_id, clawback_id):
                fen, _ = netted.get(iid, (0, batch_id))
                netted[iid] = (fen + int(amount), batch_id)
        released = sa.exists().where(hold_releases.c.instruction_id == holds_t.c.instruction_id, hold_releases.c.released_on <= today.isoformat())
        held = set(conn.scalars(sa.select(holds_t.c.instruction_id).where(holds_t.c.instruction_id.in_(ids), ~released)))
        columns = [payee_accounts.c[n] for n in ("payee_id", "account_name", "account_number", "bank_code", "verified_at", "revoked")]
        has_account = payee_id in current_accounts(Account(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in conn.execute(sa.select(*columns).where(payee_accounts.c.payee_id == payee_id)))
        owed = {r.clawback_id: r.owed_fen for r in open_receivables(conn).get(payee_id, [])}
        void_rows = conn.execute(sa.select(payment_voids.c.instruction_id, payment_voids.c.batch_id, payment_voids.c.clawback_id)
                                 .where(payment_voids.c.instruction_id.in_({*ids, *(r.corrects for r in rows if r.corrects)}))).all()
        voided = {r.instruction_id: r.batch_id for r in void_rows}
        voided_by_clawback = {r.instruction_id for r in void_rows if r.clawback_id}  # owed by no one: open_receivables
        requested = set(void_requests(conn, ids)) - voided.keys()
    items = []
    for r in rows:
        amount = int(r.amount_fen)
        recovered, batch_id = netted.get(r.instruction_id, (0, None))
        if r.kind == "clawback":
            state = "owed back" if owed.get(r.instruction_id) else "payment voided" if r.corrects in voided_by_clawback else "recovered"
        elif r.instruction_id in voided:
            state, batch_id = "voided", voided[r.instruction_id]
        elif r.instruction_id in requested:
            state = "void requested"
        elif r.instruction_id in states:
            state, batch_id = states[r.instruction_id]
        elif recovered:
            state = "netted"
        elif r.instruction_id in held:
            state = "held"
        else:
            state = "decided" if has_account else "awaiting account"
        item = {"instruction_id": r.instruction_id, "kind": r.kind, "clause_id": r.clause_id, "fiscal_year": int(r.fiscal_year), "value_date": r.value_date,
                "amount_fen": amount, "amount": format_fen(amount), "state": state, "batch_id": batch_id,
                "netted_fen": recovered, "netted": format_fen(recovered)}
        if r.kind == "payment":
            item["paid_fen"] = paid.get(r.instruction_id, 0 if recovered else None)
        else:
            item["owed_fen"] = owed.get(r.instruction_id, 0)
        items.append(item)
    return {"payee_id": payee_id, "payee_name": name, "as_of": today.isoformat(), "has_account": has_account,
            "owed_back_fen": sum(owed.values()), "owed_back": format_fen(sum(owed.values())), "limit": limit, "instructions": items}
