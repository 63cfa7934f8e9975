"""A payment's life after its file went to the bank: the bank's answers, re-issues and voids.

A *sending* is one batch item of a sent batch; an instruction has one per batch it was in (its
first sending, then a re-issue after each rejection or return; EndToEndIds in
``sinks/iso20022_answers.py``). A sending goes sent -> accepted -> settled, or rejected (pain.002
RJCT), or settled -> returned (camt.054, e.g. AC04). ``ingest_answers`` books each answer as a
fact (``ledger_bank_answers``, its ``payment-status`` message as the body) and the money it moves
as a double-entry posting (``ledger_payment_postings``), a whole file or nothing; ``book_statuses``
books the ``payment-status`` messages the pipeline and ``subsidy replay`` read the same way, each on
its own, a message that does not fit a rejection in ``ledger_rejections``:

* settled: payable:PAYEE -> ``bank:disbursement`` (the debtor account the transfers leave from);
* returned: back, bank -> payable: the payee is owed the money again;
* a void is an input of decide (topic ``payment-voids``, ``subsidy payments void``), which gives
  the payment's room back under its caps and emits a clawback of it whose computation names the
  void; booking that clawback (journal: payable -> the budget account, the void's money) marks the
  payment voided (:func:`book_voids`) if it has not gone out: never batched nor netted, or last
  rejected or returned. Until decide reaches the void (after the clause's allowed lateness) the
  operator's request (:func:`request_void`, an operator action in the chain) keeps the payment out
  of batches and re-issues. A void booked before migration 0011 moved its money with a ``void``
  posting (payable -> budget) instead, and decide's caps kept counting it.

The journal's entries and these postings together always balance: the trial balance is zero.
The answers of one file for one batch, and each void, take a place in the hash chain
(``ledger_chain_events``, kinds ``bank-answers`` and ``payment-voided``) holding what was booked,
which ``verify_bank_answers`` checks the rows against. An instruction's state is that of its last
sending, or ``voided``; ``settled`` and ``voided`` are final. A rejected or returned payment is
re-issued by the next batch once its payee has a current account other than the one it failed
on, or one verified after the failure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection, Sequence

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from rules.inputs import PAYMENT_STATUS_TOPIC, PaymentStatus
from rules.money import format_fen
from rules.payment_status import StatusMessage
from sinks.iso20022_answers import AnswerFile, end_to_end_id
from sinks.ledger.booking import _UNHASHED_REJECTION_FIELDS, canonical_json, payable_account, sha256_hex
from sinks.ledger.chain import RECORDS_BOOKED, append_fact, records_digest, set_head
from sinks.ledger.database import log
from sinks.ledger.operator_actions import action_row, append_action
from sinks.ledger.payments import VOID_REQUESTED, Account, PaymentRefused, Payments
from sinks.ledger.schema import bank_answers, batch_items, chain_events, instructions_t, journal, offsets, operator_actions, payment_events, payment_postings, payment_voids, rejections_t

BANK_ACCOUNT = "bank:disbursement"
#: a sending's state -> the answers that may follow it
_NEXT = {"sent": ("accepted", "rejected", "settled"), "accepted": ("rejected", "settled"), "settled": ("returned",), "rejected": (), "returned": ()}
#: the order in which a sending's events make its state (a later one wins)
_ORDER = ("batched", "approved", "sent", "accepted", "settled", "rejected", "returned")
#: where a payment stands when it has not gone out to its payee, so that a void may still stop it:
#: in no batch nor netted (``decided``), or its last sending refused by the bank
NOT_GONE_OUT = ("decided", "rejected", "returned")
#: who publishes the operators' voids (the policy's ``sources: payment-voids`` allows it)
VOIDS_SOURCE = "subsidy-operators"
#: a party's kind -> the field of a party object (rules/inputs.py) that holds its id
_PARTY_ID = {"enterprise": "uscc", "person": "person_id", "team": "team_ref"}


class AnswersRefused(PaymentRefused):
    """A file of answers with problems: one line each, nothing of the file booked."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s), nothing booked: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Sending:
    instruction_id: str
    batch_id: str
    reissue: int
    payee_id: str
    amount_fen: int
    account_number: str
    bank_code: str
    state: str

    @property
    def end_to_end_id(self) -> str:
        return end_to_end_id(self.instruction_id, self.reissue)


@dataclass(frozen=True, slots=True)
class IngestResult:
    booked: Counter[str]  # status -> answers booked now
    already: int  # answers of this file booked before (the same file again)
    repeated: int  # answers saying what the ledger knew (e.g. ACSC in pain.002, then camt.054)


@dataclass(frozen=True, slots=True)
class StatusResult:
    booked: Counter[str]  # status -> messages booked now
    already: int  # booked before (a redelivery)
    repeated: int  # saying what the ledger knew
    rejections: list[dict[str, Any]]  # one per message refused, now or before (subsidy-rejections records)


@dataclass(frozen=True, slots=True)
class _Booked:
    """An answer that fits its sending, to be booked."""

    sending: Sending
    message: dict[str, Any]  # its payment-status message
    amount_fen: int | None
    carrier_sha256: str  # of the file, or the topic message's bytes, that carried it


@dataclass(slots=True)
class BatchStatus:
    batch_id: str
    states: dict[str, list[int]] = field(default_factory=dict)  # state -> [payments, fen]


@dataclass(frozen=True, slots=True)
class VoidRequest:
    """An operator's request to void a payment, as recorded: what the ``payment-voids`` message says."""

    instruction_id: str
    payment: dict[str, Any]  # the instruction's body
    state: str  # where the payment stood when the void was requested
    operator: str
    reason: str
    requested_at: str  # UTC
    occurs: dt.datetime  # the void's event time: after the request, and after every claim decided before it
    new: bool  # recorded now, not by an earlier run of the command

    def message(self, zone: dt.tzinfo) -> dict[str, Any]:
        """The ``payment-voids`` message; the same for every run of the command (decide re-emits a
        redelivered void, and refuses one with other content under the same event_id)."""
        payee = self.payment["payee"]
        return {"event_id": f"void-{self.instruction_id}", "source": VOIDS_SOURCE,
                "occurred_at": self.occurs.astimezone(zone).isoformat(),
                "payee": {_PARTY_ID[payee["kind"]]: payee["id"], "name": payee["name"]},
                "payment": {"instruction_id": self.instruction_id, "clause_id": self.payment["clause_id"], "source": self.payment["source"],
                            "event_id": self.payment["event_ids"][0]},
                "operator": self.operator, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Failed:
    """A rejected or returned payment waiting for a corrected account (or a void)."""

    instruction_id: str
    batch_id: str
    end_to_end_id: str
    payee_id: str
    amount_fen: int
    state: str
    reason_code: str | None
    answered_at: str | None = None  # the bank's answer that rejected or returned it (its occurred_at)
    clause_id: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def all_sendings(conn: Connection, instruction_ids: Collection[str] | None = None) -> list[Sending]:
    """Every batch item (of ``instruction_ids`` when given) with its re-issue number and state, in (instruction, batch) order."""
    events: dict[tuple[str, str], str] = {}
    query = sa.select(payment_events.c.instruction_id, payment_events.c.batch_id, payment_events.c.status)
    b = batch_items.c
    items = sa.select(b.instruction_id, b.batch_id, b.payee_id, b.amount_fen, b.account_number, b.bank_code).order_by(b.instruction_id, b.batch_id)
    if instruction_ids is not None:
        query = query.where(payment_events.c.instruction_id.in_(list(instruction_ids)))
        items = items.where(b.instruction_id.in_(list(instruction_ids)))
    for r in conn.execute(query):
        key = (r.instruction_id, r.batch_id)
        if key not in events or _ORDER.index(r.status) > _ORDER.index(events[key]):
            events[key] = r.status
    out: list[Sending] = []
    previous, reissue = None, 0
    for item in conn.execute(items):
        reissue = reissue + 1 if item.instruction_id == previous else 0
        previous = item.instruction_id
        out.append(Sending(item.instruction_id, item.batch_id, reissue, item.payee_id, int(item.amount_fen), item.account_number, item.bank_code,
                           events.get((item.instruction_id, item.batch_id), "batched")))
    return out


def voided_instructions(conn: Connection) -> set[str]:
    return set(conn.execute(sa.select(payment_voids.c.instruction_id)).scalars())


def void_requests(conn: Connection, instruction_ids: Collection[str] | None = None) -> dict[str, Any]:
    """payment id -> the operator action that requested its void (the first, should there be more)."""
    query = sa.select(operator_actions).where(operator_actions.c.action == VOID_REQUESTED).order_by(operator_actions.c.recorded_at.desc())
    if instruction_ids is not None:
        query = query.where(operator_actions.c.subject.in_(list(instruction_ids)))
    return {row.subject: row for row in conn.execute(query)}


def where_payments_stand(conn: Connection, instruction_ids: Collection[str]) -> dict[str, tuple[str, Sending | None]]:
    """payment id -> (``decided``, ``netted`` whole, or its last sending's state; that sending)."""
    last: dict[str, Sending] = {s.instruction_id: s for s in all_sendings(conn, instruction_ids)}
    netted = set(conn.execute(sa.select(offsets.c.payment_id).where(offsets.c.payment_id.in_(list(instruction_ids)))).scalars())
    return {iid: (last[iid].state, last[iid]) if iid in last else ("netted" if iid in netted else "decided", None) for iid in instruction_ids}


def _latest_decided(conn: Connection, before_seq: int) -> dt.datetime | None:
    """The latest event time of the decisions booked before chain seq ``before_seq``. WHY: decide
    orders claims by event time, so a void dated before a claim decided already would slot in
    before it on a replay of the inputs and decide it anew (other caps' room): a replay would not
    pay what the pipeline paid, and a ledger refuses the different decision."""
    where = "WHERE chain_seq IS NULL OR chain_seq < :seq"
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.text(f"SELECT max(CAST(CAST(body AS jsonb) ->> 'occurred_at' AS timestamptz)) FROM ledger_decisions {where}"), {"seq": before_seq}).scalar()
    day = conn.execute(sa.text(f"SELECT max(julianday(json_extract(body, '$.occurred_at'))) FROM ledger_decisions {where}"), {"seq": before_seq}).scalar()
    return None if day is None else dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=day - 2440587.5)  # Julian day of the epoch


def book_voids(conn: Connection, head: tuple[int, str], voids: Sequence[tuple[str, str, dict[str, Any]]], now: str) -> tuple[int, str]:
    """In the booking transaction, after its instructions: mark voided each payment a new void
    clawback ((clawback id, payment id, its computation's ``void``)) corrects, if it has not gone
    out, with a ``payment-voided`` entry of the chain (the clawback's journal entry moved the
    money: no posting); returns the chain's head. A payment that went out in the meantime (a
    batch proposed before the void was decided) keeps its clawback as a receivable."""
    stands = where_payments_stand(conn, {payment_id for _, payment_id, _ in voids})
    voided = voided_instructions(conn)
    for clawback_id, payment_id, by in voids:
        state, last = stands[payment_id]
        if payment_id in voided or state not in NOT_GONE_OUT:
            log.warning("ledger: the void clawback %s of payment %s is booked as a receivable: the payment is %s%s", clawback_id, payment_id,
                        "voided already" if payment_id in voided else state, f" (batch {last.batch_id})" if last else "")
            continue
        batch_id = last.batch_id if last else None
        body = {"instruction_id": payment_id, "batch_id": batch_id, "state": state, "clawback_id": clawback_id,
                "actor": by["operator"], "reason": by["reason"], "voided_at": now, "postings": []}
        head = Payments._chain(conn, head, "payment-voided", batch_id, by["operator"], body, now)
        conn.execute(payment_voids.insert(), {"instruction_id": payment_id, "batch_id": batch_id, "actor": by["operator"], "reason": by["reason"],
                                              "clawback_id": clawback_id, "chain_seq": head[0], "recorded_at": now})
        voided.add(payment_id)
    return head


def reissues(conn: Connection, current: dict[str, Account], clause_id: str | None, until: str | None) -> list[tuple[str, str, int, str, str, str]]:
    """Batch items for the rejected or returned payments whose payee has a corrected account:
    another one than the payment failed on, or one verified after the failure; none of a payment
    voided, or whose void an operator requested."""
    void = voided_instructions(conn) | set(void_requests(conn))
    last: dict[str, Sending] = {}
    for s in all_sendings(conn):
        last[s.instruction_id] = s
    failed = {iid: s for iid, s in last.items() if s.state in ("rejected", "returned") and iid not in void}
    if not failed:
        return []
    a = bank_answers.c
    failed_at = {(r.instruction_id, r.batch_id): r.recorded_at
                 for r in conn.execute(sa.select(a.instruction_id, a.batch_id, a.recorded_at).where(a.status.in_(("rejected", "returned"))))}
    query = sa.select(instructions_t.c.instruction_id).where(instructions_t.c.instruction_id.in_(list(failed)))
    if clause_id:
        query = query.where(instructions_t.c.clause_id == clause_id)
    if until:
        query = query.where(instructions_t.c.value_date <= until)
    items = []
    for iid in sorted(conn.execute(query).scalars()):
        s = failed[iid]
        account = current.get(s.payee_id)
        if account is None:
            continue
        if (account.account_number, account.bank_code) != (s.account_number, s.bank_code) or account.verified_at > failed_at.get((iid, s.batch_id), ""):
            items.append((iid, s.payee_id, s.amount_fen, account.account_name, account.account_number, account.bank_code))
    return items


def _rejection_hash(rejection: dict[str, Any]) -> str:
    """As ``record()`` hashes a rejection, so that the same one booked by either is a repeat."""
    return sha256_hex(canonical_json({k: v for k, v in rejection.items() if k not in _UNHASHED_REJECTION_FIELDS}))


def _where_payments_stand(conn: Connection) -> tuple[dict[str, Sending], dict[str, str], set[str]]:
    """(sendings by EndToEndId, EndToEndId -> state, voided instructions): what an answer is judged against."""
    sendings = {s.end_to_end_id: s for s in all_sendings(conn)}
    return sendings, {e2e: s.state for e2e, s in sendings.items()}, voided_instructions(conn)


def _fit(e2e: str, status: str, amount_fen: int | None, sendings: dict[str, Sending], states: dict[str, str], voided: set[str]) -> Sending | tuple[str, str] | None:
    """The sending an answer moves on (its state in ``states`` moved with it), None for an answer
    saying what is known, or why it does not fit: (rejection code, reason)."""
    sending = sendings.get(e2e)
    if sending is None or states[e2e] in ("batched", "approved"):
        return "unknown-payment", "no payment was sent with this EndToEndId"
    if amount_fen is not None and amount_fen != sending.amount_fen:
        return "amount-differs", f"amount {format_fen(amount_fen)} differs from the {format_fen(sending.amount_fen)} sent"
    state = states[e2e]
    if status == state or (status == "accepted" and state == "settled"):
        return None  # a confirmation of what is known: nothing to book
    if sending.instruction_id in voided or status not in _NEXT[state]:
        return "state-not-allowed", f"{status}, but the payment is {'voided' if sending.instruction_id in voided else state} (batch {sending.batch_id})"
    states[e2e] = status
    return sending


class BankAnswers(Payments):
    """The bank's answers, re-issues and voids; each write one transaction under the chain-head lock."""

    # -- answers -----------------------------------------------------------------------------

    def ingest_answers(self, answers: AnswerFile, actor: str) -> IngestResult:
        """Book a file's answers, all or none: any unknown EndToEndId, amount differing from what
        was sent, or answer the payment's state does not allow refuses the whole file."""
        def write() -> IngestResult:
            now = _now()
            with self.engine.begin() as conn:
                head = self._lock(conn)
                sendings, states, voided = _where_payments_stand(conn)
                stored = {r.event_id for r in self._select_in(conn, bank_answers, "event_id", "event_id", {a.event_id for a in answers.answers})}
                problems: list[str] = []
                fresh: list[_Booked] = []
                already = repeated = 0
                for answer in answers.answers:
                    where = f"{answers.kind} {answers.message_id}: EndToEndId {answer.end_to_end_id}"
                    if answer.event_id in stored:
                        already += 1
                        continue
                    message = answer.message(answers.source)
                    try:
                        PaymentStatus.model_validate(message)
                    except ValidationError as error:
                        first = error.errors()[0]
                        problems.append(f"{where}: not a payment-status message: {'.'.join(map(str, first['loc']))}: {first['msg']}")
                        continue
                    fit = _fit(answer.end_to_end_id, answer.status, answer.amount_fen, sendings, states, voided)
                    if fit is None:
                        repeated += 1
                    elif isinstance(fit, Sending):
                        fresh.append(_Booked(fit, message, answer.amount_fen, answers.sha256))
                    else:
                        problems.append(f"{where}: {fit[1]}")
                if problems:
                    raise AnswersRefused(problems)
                header = {"file_sha256": answers.sha256, "source": answers.source, "message_id": answers.message_id}
                return IngestResult(self._book_fresh(conn, head, header, fresh, actor, now)[0], already, repeated)

        return self._with_retry(write)[0]

    def book_statuses(self, statuses: Sequence[StatusMessage], actor: str) -> StatusResult:
        """Book ``payment-status`` messages (the pipeline's intake, ``subsidy replay``), each on its
        own, in one transaction: one that names no payment sent, differs from its amount, says what
        the payment's state does not allow, or reuses a booked event_id with other content is a
        rejection (``ledger_rejections``), one per message; the others are booked as a file's
        answers are. Idempotent: a message booked before is not booked again, and one rejected
        before stays rejected (its rejection comes back, to be published again)."""
        def write() -> StatusResult:
            now = _now()
            with self.engine.begin() as conn:
                head = self._lock(conn)
                sendings, states, voided = _where_payments_stand(conn)
                booked = dict(self._select_in(conn, bank_answers, "event_id, content_hash", "event_id", {s.message["event_id"] for s in statuses}))
                refused = dict(self._select_in(conn, rejections_t, "rejection_id, body", "rejection_id", {s.rejection_id for s in statuses}))
                fresh: list[_Booked] = []
                rejections: list[dict[str, Any]] = []
                already = repeated = 0
                for status in statuses:
                    if status.rejection_id in refused:
                        rejections.append(json.loads(refused[status.rejection_id]))
                        continue
                    message = status.message
                    content_hash = sha256_hex(canonical_json(message))
                    if message["event_id"] in booked:
                        if booked[message["event_id"]] == content_hash:
                            already += 1
                            continue
                        fit: Sending | tuple[str, str] | None = ("event-id-reused", f"event_id {message['event_id']!r} was booked with different content; "
                                                                                    "an event_id is never reused: publish a new event")
                    else:
                        fit = _fit(message["end_to_end_id"], message["status"], status.amount_fen, sendings, states, voided)
                    if fit is None:
                        repeated += 1
                    elif isinstance(fit, Sending):
                        booked[message["event_id"]] = content_hash
                        fresh.append(_Booked(fit, message, status.amount_fen, status.sha256))
                    else:
                        rejections.append(status.reject(*fit))
                booked_now, head = self._book_fresh(conn, head, {"topic": PAYMENT_STATUS_TOPIC}, fresh, actor, now)
                new = {r["rejection_id"]: (r, _rejection_hash(r)) for r in rejections if r["rejection_id"] not in refused}
                if new:  # covered by one fact of the chain, as booking's rejections are
                    covered = [(rid, content_hash) for rid, (_, content_hash) in new.items()]
                    head = append_fact(conn, head, RECORDS_BOOKED, "batch", actor, {"rejections": [len(covered), records_digest(covered)]}, now)
                    set_head(conn, head)
                    self._insert(conn, rejections_t, ("rejection_id", "topic", "code", "content_hash", "body", "recorded_at", "chain_seq"),
                                 [(rid, r["topic"], r["code"], content_hash, canonical_json(r), now, head[0]) for rid, (r, content_hash) in new.items()])
                return StatusResult(booked_now, already, repeated, rejections)

        return self._with_retry(write)[0]

    def _book_fresh(self, conn: Connection, head: tuple[int, str], header: dict[str, Any], fresh: list[_Booked], actor: str, now: str) -> tuple[Counter[str], tuple[int, str]]:
        """Book answers that fit, one chain entry per batch: (status -> answers booked, the chain's head)."""
        booked: Counter[str] = Counter()
        for batch_id in sorted({item.sending.batch_id for item in fresh}):
            group = [item for item in fresh if item.sending.batch_id == batch_id]
            head = self._book_answers(conn, head, header, batch_id, group, actor, now)
            booked.update(item.message["status"] for item in group)
        return booked, head

    def _book_answers(self, conn: Connection, head: tuple[int, str], header: dict[str, Any], batch_id: str,
                      group: list[_Booked], actor: str, now: str) -> tuple[int, str]:
        """One chain entry holding ``header`` (where the answers came from), the answers about
        ``batch_id`` and the postings they move, then their rows."""
        postings = []  # posting id, instruction, kind, debit, credit, fen: what the chain entry holds
        for item in group:
            sending, event_id, status = item.sending, item.message["event_id"], item.message["status"]
            payable = payable_account(sending.payee_id)
            if status == "settled":
                postings.append([event_id, sending.instruction_id, "settlement", payable, BANK_ACCOUNT, sending.amount_fen])
            elif status == "returned":
                postings.append([event_id, sending.instruction_id, "return", BANK_ACCOUNT, payable, sending.amount_fen])
        body = {**header, "answers": [item.message for item in group], "postings": postings}
        head = self._chain(conn, head, "bank-answers", batch_id, actor, body, now)
        rows, events = [], []
        for item in group:
            sending, message = item.sending, item.message
            text = canonical_json(message)
            rows.append((message["event_id"], message["source"], item.carrier_sha256, message["end_to_end_id"], sending.instruction_id, batch_id, message["status"],
                         message.get("reason_code"), item.amount_fen, message["occurred_at"], head[0], sha256_hex(text), text, now))
            events.append((sending.instruction_id, batch_id, message["status"], now, message.get("reason_code")))
        self._insert(conn, bank_answers, ("event_id", "source", "file_sha256", "end_to_end_id", "instruction_id", "batch_id", "status",
                                          "reason_code", "amount_fen", "occurred_at", "chain_seq", "content_hash", "body", "recorded_at"), rows)
        self._insert(conn, payment_events, ("instruction_id", "batch_id", "status", "at", "reason_code"), events)
        self._insert(conn, payment_postings, _POSTING_COLUMNS, [(*posting, head[0], now) for posting in postings])
        return head

    # -- re-issues and voids -------------------------------------------------------------------

    def request_void(self, instruction_id: str, actor: str, reason: str) -> VoidRequest:
        """Record an operator's request to void a payment that has not gone out (an operator action
        in the chain): from now on it is in no batch nor re-issue; decide's clawback voids it
        (:func:`book_voids`). A payment whose void was requested before: that request, to be
        published again (decide re-emits a void it has seen)."""
        def write() -> VoidRequest:
            with self.engine.begin() as conn:
                head = self._lock(conn)
                row = conn.execute(sa.select(instructions_t.c.kind, instructions_t.c.body).where(instructions_t.c.instruction_id == instruction_id)).first()
                if row is None:
                    raise PaymentRefused(f"no instruction {instruction_id!r} in this ledger")
                if row.kind != "payment":
                    raise PaymentRefused(f"instruction {instruction_id} is a {row.kind}: only a payment can be voided")
                if instruction_id in voided_instructions(conn):
                    raise PaymentRefused(f"payment {instruction_id} is already voided")
                state, last = where_payments_stand(conn, [instruction_id])[instruction_id]
                requested = void_requests(conn, [instruction_id]).get(instruction_id)
                if requested is None and state not in NOT_GONE_OUT:
                    raise PaymentRefused(f"payment {instruction_id} is {state}" + (f" (batch {last.batch_id})" if last else "")
                                         + ": only a payment not gone out (in no batch, or rejected or returned by the bank) can be voided")
                if requested is None:
                    action = action_row(actor, "cli", VOID_REQUESTED, instruction_id, reason)  # the command line has no roles
                    seq = append_action(conn, head, action)[0]
                else:
                    action = dict(requested._mapping)
                    seq = conn.execute(sa.select(chain_events.c.seq).where(chain_events.c.kind == "operator-action",
                                                                           chain_events.c.body.contains(canonical_json({"action_id": action["action_id"]})[1:-1]))).scalar_one()
                requested_at = dt.datetime.fromisoformat(action["recorded_at"])
                latest = _latest_decided(conn, seq)
                occurs = max(requested_at, latest + dt.timedelta(seconds=1) if latest else requested_at).replace(microsecond=0)
                return VoidRequest(instruction_id, json.loads(row.body), state, action["user_name"], action["reason"], action["recorded_at"], occurs, requested is None)

        return self._with_retry(write)[0]

    def resolve_instruction(self, reference: str) -> str:
        """The instruction id of a reference: the id itself, its 32 hex characters or an EndToEndId."""
        with self.engine.connect() as conn:
            if conn.execute(sa.select(instructions_t.c.instruction_id).where(instructions_t.c.instruction_id == reference)).first():
                return reference
            for s in all_sendings(conn):
                if reference in (s.end_to_end_id, s.end_to_end_id[:32]):
                    return s.instruction_id
        raise PaymentRefused(f"no payment {reference!r} in this ledger")

    # -- reading -------------------------------------------------------------------------------

    def payment_status(self, batch_id: str | None = None) -> tuple[list[BatchStatus], list[Failed], dict[str, str]]:
        """(per batch: payments and fen per state of its sendings; the rejected and returned payments
        not yet re-issued nor voided, nor their void requested; instruction id -> its state, for the
        batched payments and the voided ones never batched)."""
        with self.engine.connect() as conn:
            sendings = all_sendings(conn)
            voided = voided_instructions(conn)
            requested = set(void_requests(conn)) - voided
            answers = {(r.instruction_id, r.batch_id): (r.reason_code, r.occurred_at) for r in conn.execute(
                sa.select(bank_answers.c.instruction_id, bank_answers.c.batch_id, bank_answers.c.reason_code, bank_answers.c.occurred_at)
                .where(bank_answers.c.status.in_(("rejected", "returned"))))}
            clauses = dict(conn.execute(sa.select(instructions_t.c.instruction_id, instructions_t.c.clause_id)
                                        .where(instructions_t.c.instruction_id.in_({iid for iid, _ in answers}))).all()) if answers else {}
        last = {s.instruction_id: s for s in sendings}
        per_batch: dict[str, BatchStatus] = {}
        for s in sendings:
            state = "voided" if s.instruction_id in voided and last[s.instruction_id] is s else s.state
            counts = per_batch.setdefault(s.batch_id, BatchStatus(s.batch_id)).states.setdefault(state, [0, 0])
            counts[0] += 1
            counts[1] += s.amount_fen
        if batch_id is not None and batch_id not in per_batch:
            raise PaymentRefused(f"no batch {batch_id!r} in this ledger: `subsidy payments list` shows the batches")
        failed = [Failed(s.instruction_id, s.batch_id, s.end_to_end_id, s.payee_id, s.amount_fen, s.state,
                         *answers.get((s.instruction_id, s.batch_id), (None, None)), clauses.get(s.instruction_id))
                  for s in last.values() if s.state in ("rejected", "returned") and s.instruction_id not in voided | requested and batch_id in (None, s.batch_id)]
        states = {iid: "voided" if iid in voided else VOID_REQUESTED if iid in requested else s.state for iid, s in last.items()}
        if batch_id is None:
            states.update((iid, "voided") for iid in voided - states.keys())
        batches = [per_batch[b] for b in sorted(per_batch) if batch_id in (None, b)]
        return batches, sorted(failed, key=lambda f: (f.batch_id, f.instruction_id)), states

    def bookings(self, days: set[str]) -> list[tuple[str, str, int]]:
        """(EndToEndId, DBIT|CRDT, fen) of each settlement and return the ledger booked on ``days``
        (the booking day the bank's answer gave)."""
        a = bank_answers.c
        with self.engine.connect() as conn:
            sendings = {(s.instruction_id, s.batch_id): s for s in all_sendings(conn)}
            rows = conn.execute(sa.select(a.instruction_id, a.batch_id, a.status, a.occurred_at).where(a.status.in_(("settled", "returned")))).all()
        return [(sendings[(r.instruction_id, r.batch_id)].end_to_end_id, "DBIT" if r.status == "settled" else "CRDT",
                 sendings[(r.instruction_id, r.batch_id)].amount_fen) for r in rows if r.occurred_at[:10] in days]

    def verify_bank_answers(self) -> list[str]:
        """The answers, postings and voids against the chain entries that hold them: a row edited,
        added or removed behind the ledger's back is a problem (the entries' own hashes are
        ``verify_chain``'s)."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            entries = conn.execute(sa.select(chain_events.c.seq, chain_events.c.kind, chain_events.c.body)
                                   .where(chain_events.c.kind.in_(("bank-answers", "payment-voided")))).all()
            answers: dict[int, dict[str, Any]] = {}
            for r in conn.execute(sa.select(bank_answers)):
                answers.setdefault(int(r.chain_seq), {})[r.event_id] = r
            postings: dict[int, dict[str, list[Any]]] = {}
            for r in conn.execute(sa.select(payment_postings)):
                postings.setdefault(int(r.chain_seq), {})[r.posting_id] = [r.posting_id, r.instruction_id, r.kind, r.debit_account, r.credit_account, int(r.amount_fen)]
            voids = {int(r.chain_seq): r for r in conn.execute(sa.select(payment_voids))}
        for entry in entries:
            body = json.loads(entry.body)
            where = f"chain seq {entry.seq} ({entry.kind})"
            rows = answers.pop(entry.seq, {})
            for message in body.get("answers", []):
                row = rows.pop(message["event_id"], None)
                if row is None:
                    problems.append(f"{where}: answer {message['event_id']} is missing from ledger_bank_answers")
                elif row.content_hash != sha256_hex(canonical_json(message)) or sha256_hex(row.body) != row.content_hash or \
                        (row.status, row.end_to_end_id) != (message["status"], message["end_to_end_id"]):
                    problems.append(f"{where}: answer {row.event_id} differs from what the entry holds: the row was edited")
            problems.extend(f"answer {event_id} names {where}, which does not hold it: it was added" for event_id in rows)
            if postings.pop(entry.seq, {}) != {p[0]: p for p in body["postings"]}:
                problems.append(f"{where}: its postings in ledger_payment_postings differ from what the entry holds")
            if entry.kind == "payment-voided":
                void = voids.pop(entry.seq, None)
                if void is None or (void.instruction_id, void.batch_id, void.actor, void.reason, void.clawback_id) != \
                        (body["instruction_id"], body["batch_id"], body["actor"], body["reason"], body.get("clawback_id")):
                    problems.append(f"{where}: the void of {body['instruction_id']} in ledger_payment_voids is missing or differs from the entry")
        problems.extend(f"answer {event_id}: its chain seq {seq} is no entry of bank answers: it was added" for seq, rows in answers.items() for event_id in rows)
        problems.extend(f"posting {posting_id}: its chain seq {seq} is no entry of bank answers or voids: it was added" for seq, rows in postings.items() for posting_id in rows)
        problems.extend(f"the void of {void.instruction_id}: its chain seq {seq} is no void entry: it was added" for seq, void in voids.items())
        return problems

    def trial_balance(self) -> dict[str, int]:
        """account -> debits minus credits over the journal and the payments' postings (sums to zero)."""
        balances: Counter[str] = Counter()
        with self.engine.connect() as conn:
            for table in (journal, payment_postings):
                for r in conn.execute(sa.select(table.c.debit_account, table.c.credit_account, table.c.amount_fen)):
                    balances[r.debit_account] += int(r.amount_fen)
                    balances[r.credit_account] -= int(r.amount_fen)
        return dict(sorted(balances.items()))


_POSTING_COLUMNS = ("posting_id", "instruction_id", "kind", "debit_account", "credit_account", "amount_fen", "chain_seq", "recorded_at")
