"""Booking: one batch of decisions, instructions and rejections into the ledger, in one
transaction.

Each record is checked and hashed (its content hash: canonical JSON, SHA-256); a repeated id with
the same content is a no-op, with different content :class:`LedgerConflict`. Each new instruction
becomes one balanced journal entry chained to the previous one, and a payment is charged to the
caps it names (``computation.caps``) in ``ledger_cap_usage``, a clawback gives the room back;
a clawback of an operator's void (its computation has ``void``) also marks its payment voided
(sinks/ledger/bank_answers.py ``book_voids``).
The checks that name a culprit run here in Python in batch order; the database's constraints
(sinks/ledger/schema.py) stay the last line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from rules.money import format_fen
from rules.records import CorrectionComputation, Decision, GrantComputation, Instruction
from sinks.ledger.database import LedgerDatabase, LedgerError, RetryPolicy
from sinks.ledger.schema import accounts, cap_charges, cap_usage, chain_head, decisions_t, instructions_t, journal, rejections_t

if TYPE_CHECKING:
    from rules.exclusions import Listing

# Fields of a rejection left out of its content hash: rejected_at is not deterministic (set by
# whichever adapter saw the bytes when); the v1.1 size fields follow from the bytes that the
# rejection id already names, and a rejection booked before v1.1 has none of them, so its batch
# redelivered after the upgrade is a repeat, not a conflict.
_UNHASHED_REJECTION_FIELDS = frozenset({"rejected_at", "original_length", "original_sha256", "original_truncated"})


# -- errors ----------------------------------------------------------------------------------


class LedgerConflict(LedgerError):
    """An id already stored (or repeated in the batch) with different content."""

    def __init__(self, kind: str, record_id: str, fields: list[str]):
        self.kind = kind
        self.record_id = record_id
        self.fields = fields
        shown = ", ".join(fields[:12]) + (f" (+{len(fields) - 12} more)" if len(fields) > 12 else "")
        super().__init__(f"{kind} {record_id} is already in the ledger with different content; differing fields: {shown}")


class CapOverrun(LedgerError):
    """A payment would take a cap's usage above its limit."""


class InvalidRecord(LedgerError):
    """A record that is not shaped like the pure core's output."""


# -- results ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordResult:
    new_decisions: int = 0
    new_instructions: int = 0
    new_rejections: int = 0
    present_decisions: int = 0
    present_instructions: int = 0
    present_rejections: int = 0
    new_listings: int = 0  # of payee-exclusions (sinks/ledger/holds.py)
    attempts: int = 1

    @property
    def new(self) -> int:
        return self.new_decisions + self.new_instructions + self.new_rejections

    @property
    def present(self) -> int:
        return self.present_decisions + self.present_instructions + self.present_rejections


@dataclass(slots=True)
class _Prepared:
    kind: str  # decision | instruction | rejection
    record_id: str
    body: dict[str, Any]
    text: str
    content_hash: str
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Cap:
    """A cap's usage row as a batch being booked sees it."""

    kind: str
    limit: int
    used: int
    used_before: int  # as stored before the batch


# -- canonical forms -------------------------------------------------------------------------


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, with one encoder."""
    return _CANONICAL.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def diff_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (``computation.caps[0].limit``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                out.append(sub)
            else:
                out.extend(diff_paths(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(diff_paths(a, b, f"{path}[{i}]"))
        return out
    return [] if old == new else [path or "<record>"]


def budget_account(policy_id: str, clause_id: str, fiscal_year: int) -> str:
    return f"budget:{policy_id}:{clause_id}:{fiscal_year}"


def payable_account(payee_id: str) -> str:
    return f"payable:{payee_id}"


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """Hash of one journal entry chained to the previous one. Deterministic: no wall-clock time."""
    fields = (
        entry["seq"],
        entry["instruction_id"],
        entry["entry_kind"],
        entry["debit_account"],
        entry["credit_account"],
        int(entry["amount_fen"]),
        entry["clause_id"],
        int(entry["fiscal_year"]),
        entry["payee_id"],
        entry["instruction_hash"],
    )
    return _chain_hash(prev_hash, fields)


def _chain_hash(prev_hash: str, fields: tuple[Any, ...]) -> str:
    """``fields``: seq, instruction_id, entry_kind, debit and credit account, amount_fen (int),
    clause_id, fiscal_year (int), payee_id, instruction_hash."""
    return sha256_hex(prev_hash + "\n" + canonical_json(fields))


def _value_date(occurred_at: str, zone: ZoneInfo) -> str:
    """The day ``occurred_at`` falls on in ``zone`` (the policy's time zone)."""
    try:
        return dt.datetime.fromisoformat(occurred_at).astimezone(zone).date().isoformat()
    except (TypeError, ValueError):
        raise InvalidRecord(f"occurred_at {occurred_at!r} is not an RFC 3339 timestamp") from None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


# -- statements ------------------------------------------------------------------------------

_INSTRUCTION_FIELDS = ("kind", "policy_id", "policy_version", "clause_id", "fiscal_year", "payee_id", "amount_fen", "currency", "corrects", "occurred_at", "value_date")
_INSTRUCTION_COLUMNS = ("instruction_id", *_INSTRUCTION_FIELDS, "journal_seq", "content_hash", "body", "recorded_at")
_JOURNAL_COLUMNS = ("seq", "instruction_id", "entry_kind", "debit_account", "credit_account", "amount_fen", "clause_id", "fiscal_year", "payee_id", "instruction_hash", "prev_hash", "entry_hash", "recorded_at")
_ACCOUNT_COLUMNS = ("account_id", "kind", "policy_id", "clause_id", "fiscal_year", "payee_id", "payee_kind", "name")
_ID_COLUMN = {"decision": decisions_t.c.decision_id, "instruction": instructions_t.c.instruction_id, "rejection": rejections_t.c.rejection_id}
_TABLE = {"decision": decisions_t, "instruction": instructions_t, "rejection": rejections_t}

# The statements of every batch, built once. WHY: a SQLAlchemy expression built per batch leaves
# its bind parameters and comparators in reference cycles, which a worker's relaxed collector
# (subsidy/runtime.py) freed only once a minute; 1,000-1,600 were waiting at any time in a soak.
_READ_HEAD = sa.select(chain_head.c.seq, chain_head.c.head_hash).where(chain_head.c.id == 1)
_READ_HEAD_FOR_UPDATE = _READ_HEAD.with_for_update()
_SET_HEAD = chain_head.update().where(chain_head.c.id == 1)  # SET from the parameters: seq, head_hash
_ADD_TO_CAP = cap_usage.update().where(cap_usage.c.scope == sa.bindparam("s")).values(used=cap_usage.c.used + sa.bindparam("delta"), cap_limit=sa.bindparam("lim"))


# -- booking -------------------------------------------------------------------------------


class Booking(LedgerDatabase):
    """``record()``: a batch checked, hashed and booked in one transaction, retried on connection loss."""

    def __init__(self, engine: Engine, retry: RetryPolicy | None = None, *, timezone: str | None = None):
        super().__init__(engine, retry, timezone=timezone)
        self._known_accounts: set[str] = set()  # accounts seen committed (never deleted)

    def record(self, decisions: Sequence[Decision | dict[str, Any]], instructions: Sequence[Instruction | dict[str, Any]], rejections: Sequence[dict[str, Any]],
               listings: Sequence["Listing"] = ()) -> RecordResult:
        """Store one batch in one transaction, with the payee-exclusions ``listings`` that came
        with it and the holds they and its payments call for. Idempotent; retried on connection loss.

        Decisions and instructions are the engine's typed records, or their wire dicts (read into
        records first, an unreadable one refused as :class:`InvalidRecord`)."""
        batch = self._prepare(decisions or [], instructions or [], rejections or [])
        (result, attempts) = self._with_retry(lambda: self._write(batch, listings))
        result.attempts = attempts
        return result

    def _prepare(
        self, decisions: Sequence[Decision | dict[str, Any]], instructions: Sequence[Instruction | dict[str, Any]], rejections: Sequence[dict[str, Any]],
    ) -> dict[str, list[_Prepared]]:
        out: dict[str, dict[str, _Prepared]] = {"decision": {}, "instruction": {}, "rejection": {}}
        records: tuple[tuple[str, Sequence[Decision | Instruction | dict[str, Any]]], ...] = (("decision", decisions), ("instruction", instructions), ("rejection", rejections))
        for kind, items in records:
            for item in items:
                typed: Decision | Instruction | None
                if isinstance(item, (Decision, Instruction)):
                    body, typed = item.to_wire(), item
                else:
                    body, typed = item, self._read(kind, item)
                record_id = body[f"{kind}_id"]
                text = canonical_json(body)
                hashed = canonical_json({k: v for k, v in body.items() if k not in _UNHASHED_REJECTION_FIELDS}) if kind == "rejection" else text
                prepared = _Prepared(kind, record_id, body, text, sha256_hex(hashed))
                if isinstance(typed, Instruction):
                    prepared.row = self._instruction_row(typed, self.zone)
                elif isinstance(typed, Decision):
                    prepared.row = self._decision_row(typed)
                else:
                    prepared.row = {"topic": body.get("topic"), "code": body.get("code")}
                seen = out[kind].get(record_id)
                if seen is not None:
                    if seen.content_hash != prepared.content_hash:
                        raise LedgerConflict(kind, record_id, diff_paths(seen.body, body))
                    continue
                out[kind][record_id] = prepared
        return {kind: list(items.values()) for kind, items in out.items()}

    @staticmethod
    def _read(kind: str, body: Any) -> Decision | Instruction | None:
        """A wire dict as its typed record (None for a rejection, which has none): what a record's
        type guarantees is checked here, once, for records that come as dicts."""
        if not isinstance(body, dict):
            raise InvalidRecord(f"{kind} must be a JSON object, got {type(body).__name__}")
        record_id = body.get(f"{kind}_id")
        if not isinstance(record_id, str) or not record_id:
            raise InvalidRecord(f"{kind} without a {kind}_id: {canonical_json(body)[:200]}")
        if kind == "rejection":
            return None
        try:
            if kind == "decision":
                return Decision.from_wire(body)
            if body.get("kind") not in ("payment", "clawback"):
                raise InvalidRecord(f"instruction {record_id}: kind {body.get('kind')!r} is not payment or clawback")
            if body.get("currency") != "CNY":
                raise InvalidRecord(f"instruction {record_id}: currency {body.get('currency')!r}; the ledger books CNY only")
            return Instruction.from_wire(body)
        except KeyError as missing:
            raise InvalidRecord(f"{kind} {record_id} has no {missing.args[0]}") from None
        except (TypeError, AttributeError, ValueError) as error:  # AmountError is a ValueError
            raise InvalidRecord(f"{kind} {record_id} is not shaped like the pure core's output: {error}") from None

    @staticmethod
    def _decision_row(decision: Decision) -> dict[str, Any]:
        return {
            "event_id": decision.event_id,
            "source": decision.source,
            "clause_id": decision.clause_id,
            "fiscal_year": decision.fiscal_year,
            "outcome": decision.outcome,
            "granted_fen": decision.granted,
            "instruction_id": decision.instruction_id,
        }

    @staticmethod
    def _instruction_row(instruction: Instruction, zone: ZoneInfo | None) -> dict[str, Any]:
        iid, kind, amount, computation = instruction.instruction_id, instruction.kind, instruction.amount, instruction.computation
        if zone is None:
            raise LedgerError(f"instruction {iid}: this ledger was opened without the policy's time zone (Ledger.open(url, timezone=policy.timezone)), so it has no value date")
        row: dict[str, Any] = {
            "kind": kind,
            "policy_id": instruction.policy_id,
            "policy_version": instruction.policy_version,
            "clause_id": instruction.clause_id,
            "fiscal_year": instruction.fiscal_year,
            "payee_id": instruction.payee.id,
            "amount_fen": amount,
            "currency": instruction.currency,
            "corrects": instruction.corrects,
            "occurred_at": instruction.occurred_at,
            "value_date": _value_date(instruction.occurred_at, zone),
        }
        # What the types leave open: the sign of the amount and the computation each kind has.
        if kind == "payment":
            if amount <= 0 or instruction.corrects is not None:
                raise InvalidRecord(f"instruction {iid}: a payment has a positive amount and corrects nothing")
            if not isinstance(computation, GrantComputation):
                raise InvalidRecord(f"instruction {iid}: a payment's computation is a grant")
            # a count cap's `adds` is 0 for a subject a `distinct` cap has already counted
            row["_charges"] = [(step.scope, step.kind, step.limit, amount if step.kind == "amount" else step.adds) for step in computation.caps]
        else:
            if amount >= 0 or not instruction.corrects:
                raise InvalidRecord(f"instruction {iid}: a clawback has a negative amount and names the instruction it corrects")
            if not isinstance(computation, CorrectionComputation):
                raise InvalidRecord(f"instruction {iid}: a clawback's computation is a correction")
            row["_full_clawback"] = computation.granted_after == 0
            row["_charges"] = [(scope, "", 0, 0) for scope in computation.caps_released]
        return row

    def _lock(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(_READ_HEAD_FOR_UPDATE if self.dialect == "postgresql" else _READ_HEAD).one()
        return int(row.seq), row.head_hash

    def _write(self, batch: dict[str, list[_Prepared]], listings: Sequence["Listing"]) -> RecordResult:
        from sinks.ledger.bank_answers import book_voids  # these build on this module
        from sinks.ledger.chain import RECORDS_BOOKED, append_fact, records_digest, set_head
        from sinks.ledger.holds import hold_in_booking, parties_of

        result = RecordResult()
        if not any(batch.values()) and not listings:
            return result
        now = _now()
        new_accounts: set[str] = set()
        with self.engine.begin() as conn:
            seq, head = self._lock(conn)
            new: dict[str, list[_Prepared]] = {}
            for kind, items in batch.items():
                table, column = _TABLE[kind], _ID_COLUMN[kind]
                existing = dict(self._select_in(conn, table, f"{column.name}, content_hash", column.name, (p.record_id for p in items)))
                fresh = []
                for p in items:
                    stored = existing.get(p.record_id)
                    if stored is None:
                        fresh.append(p)
                    elif stored != p.content_hash:
                        body = conn.execute(sa.select(table.c.body).where(column == p.record_id)).scalar_one()
                        raise LedgerConflict(kind, p.record_id, diff_paths(json.loads(body), p.body))
                setattr(result, f"new_{kind}s", len(fresh))
                setattr(result, f"present_{kind}s", len(items) - len(fresh))
                new[kind] = fresh
            # The batch's decisions, rejections, listings, holds and releases are covered by one fact, chained after its journal entries.
            fact_seq = seq + len(new["instruction"]) + 1
            for kind in ("decision", "rejection"):
                if new[kind]:
                    names = (_ID_COLUMN[kind].name, *new[kind][0].row, "content_hash", "body", "recorded_at", "chain_seq")
                    self._insert(conn, _TABLE[kind], names, [(p.record_id, *p.row.values(), p.content_hash, p.text, now, fact_seq) for p in new[kind]])
            if new["instruction"]:
                seq, head = self._book(conn, new["instruction"], seq, head, now, new_accounts)
            payments = [(p.record_id, parties_of(p.body), p.row["value_date"]) for p in new["instruction"] if p.row["kind"] == "payment"]
            held = hold_in_booking(self, conn, listings, payments, now, fact_seq)
            result.new_listings = len(held["listings"])
            covered = {"decisions": [(p.record_id, p.content_hash) for p in new["decision"]],
                       "rejections": [(p.record_id, p.content_hash) for p in new["rejection"]], **held}
            if any(covered.values()):
                body = {name: [len(rows), records_digest(rows)] for name, rows in covered.items() if rows}
                seq, head = append_fact(conn, (seq, head), RECORDS_BOOKED, "batch", "ledger", body, now)
            # decide's clawback of an operator's void (topic payment-voids) voids its payment if it has not gone out
            voids = [(p.record_id, p.row["corrects"], p.body["computation"]["void"]) for p in new["instruction"] if p.body["computation"].get("void")]
            if voids:
                seq, head = book_voids(conn, (seq, head), voids, now)
            if new["instruction"] or any(covered.values()):
                set_head(conn, (seq, head))
        self._known_accounts |= new_accounts
        return result

    def _book(self, conn: Connection, items: list[_Prepared], seq: int, head: str, now: str, new_accounts: set[str]) -> tuple[int, str]:
        """Book new instructions (in batch order) with one statement per table.

        Everything a row-at-a-time booking would check is checked here in Python, in the same
        order and with the same messages, against rows read under the chain-head lock (every
        writer takes it first, so they cannot change underneath); the database constraints stay
        the last line of defence for the aggregated writes.
        """
        # What the checks need from the database, read in one query per table.
        corrects = {p.row["corrects"] for p in items if p.row["kind"] == "clawback"}
        originals = {r.instruction_id: (r.kind, int(r.amount_fen), r.clause_id, r.payee_id, r.fiscal_year) for r in self._select_in(conn, instructions_t, "instruction_id, kind, amount_fen, clause_id, payee_id, fiscal_year", "instruction_id", corrects)}
        clawed = {k: int(v) for k, v in self._select_in(conn, instructions_t, "corrects, sum(amount_fen) AS clawed", "corrects", corrects, group_by=True)}
        # A whole clawback gives back the place its payment took under a count cap (0 or 1).
        count_places = {(r.instruction_id, r.scope): int(r.delta) for r in self._select_in(conn, cap_charges, "instruction_id, scope, delta", "instruction_id", corrects)}
        scopes = {charge[0] for p in items for charge in p.row["_charges"]}
        caps = {r.scope: _Cap(r.kind, int(r.cap_limit), int(r.used), int(r.used)) for r in self._select_in(conn, cap_usage, "scope, kind, cap_limit, used", "scope", scopes, for_update=True)}
        stored_caps = set(caps)

        known = self._known_accounts
        account_rows: dict[str, tuple[Any, ...]] = {}
        instruction_rows: list[tuple[Any, ...]] = []
        charge_rows: list[tuple[Any, ...]] = []
        journal_rows: list[tuple[Any, ...]] = []
        last_charge: dict[str, str] = {}  # scope -> last instruction of the batch that changed it
        instruction_values = operator.itemgetter(*_INSTRUCTION_FIELDS)
        for p in items:
            row = p.row
            iid = p.record_id
            kind, policy_id, clause_id, fiscal_year, payee_id, amount = row["kind"], row["policy_id"], row["clause_id"], row["fiscal_year"], row["payee_id"], row["amount_fen"]
            budget = budget_account(policy_id, clause_id, fiscal_year)
            payable = payable_account(payee_id)
            if budget not in known and budget not in account_rows:
                account_rows[budget] = (budget, "budget", policy_id, clause_id, fiscal_year, None, None, f"{clause_id} budget {fiscal_year}")
            if payable not in known and payable not in account_rows:
                payee = p.body["payee"]
                account_rows[payable] = (payable, "payable", None, None, None, payee_id, payee.get("kind"), str(payee.get("name") or payee_id))

            if kind == "clawback":
                target = row["corrects"]
                original = originals.get(target)
                if original is None or original[0] != "payment":
                    raise InvalidRecord(f"clawback {iid} corrects {target}, which is not a payment in the ledger")
                if original[2:] != (clause_id, payee_id, fiscal_year):
                    raise InvalidRecord(f"clawback {iid} does not match the clause, payee and fiscal year of {target}")
                before = clawed.get(target, 0)
                if -before - amount > original[1]:
                    raise CapOverrun(f"clawback {iid}: clawbacks of {target} would total {format_fen(-before - amount)}, more than its {format_fen(original[1])}")
                clawed[target] = before + amount
            else:
                originals[iid] = (kind, amount, clause_id, payee_id, fiscal_year)  # a clawback later in the batch may correct it

            seq += 1
            instruction_rows.append((iid, *instruction_values(row), seq, p.content_hash, p.text, now))

            for scope, cap_kind, limit, delta in row["_charges"]:
                current = caps.get(scope)
                if kind == "clawback":
                    if current is None:
                        raise InvalidRecord(f"clawback {iid} releases cap {scope}, which no payment in the ledger was charged to")
                    delta = amount if current.kind == "amount" else (-count_places.get((row["corrects"], scope), 0) if row["_full_clawback"] else 0)
                    if delta == 0:
                        continue
                    if current.used + delta < 0:
                        raise CapOverrun(f"instruction {iid}: the database would refuse the change of cap {scope}: used {current.used} + {delta} < 0 (ck_cap_usage_not_negative)")
                    current.used += delta
                else:
                    used = 0 if current is None else current.used
                    if current is not None and current.kind != cap_kind:
                        raise InvalidRecord(f"instruction {iid}: cap {scope} is a {current.kind} cap in the ledger, not {cap_kind}")
                    if used + delta > limit:
                        shown = format_fen if cap_kind == "amount" else str
                        raise CapOverrun(f"payment {iid} would overrun cap {scope}: used {shown(used)} + {shown(delta)} > limit {shown(limit)}")
                    if current is None:
                        current = caps[scope] = _Cap(cap_kind, limit, 0, 0)
                    current.used += delta
                    current.limit = limit
                    count_places[(iid, scope)] = delta  # a clawback later in the batch may give it back
                last_charge[scope] = iid
                charge_rows.append((iid, scope, delta))

            debit, credit = (budget, payable) if kind == "payment" else (payable, budget)
            entry = (seq, iid, kind, debit, credit, abs(amount), clause_id, fiscal_year, payee_id, p.content_hash)
            digest = _chain_hash(head, entry)
            journal_rows.append((*entry, head, digest, now))
            head = digest

        # Accounts: the ones neither known to be committed nor already stored.
        if account_rows:
            present = {r[0] for r in self._select_in(conn, accounts, "account_id", "account_id", account_rows)}
            self._insert(conn, accounts, _ACCOUNT_COLUMNS, [values for account_id, values in account_rows.items() if account_id not in present])
            new_accounts.update(account_rows)
        self._insert(conn, instructions_t, _INSTRUCTION_COLUMNS, instruction_rows)
        if last_charge:
            self._apply_caps(conn, caps, stored_caps, last_charge)
            self._insert(conn, cap_charges, ("instruction_id", "scope", "delta"), charge_rows)
        self._insert(conn, journal, _JOURNAL_COLUMNS, journal_rows)
        return seq, head

    def _apply_caps(self, conn: Connection, caps: dict[str, "_Cap"], stored: set[str], last_charge: dict[str, str]) -> None:
        """Write the batch's net cap changes: one INSERT for new scopes, one pipelined UPDATE for the others.

        The CHECK constraints (``0 <= used <= cap_limit``) are the guarantee; the checks above only
        name the culprit. Should the database still refuse, the changes are replayed one scope at a
        time to name the cap (and the batch's last instruction that changed it)."""
        inserts: list[dict[str, Any]] = [{"scope": s, "kind": c.kind, "cap_limit": c.limit, "used": c.used} for s, c in caps.items() if s in last_charge and s not in stored]
        updates: list[dict[str, Any]] = [{"s": s, "delta": c.used - c.used_before, "lim": c.limit} for s, c in caps.items() if s in last_charge and s in stored]
        savepoint = conn.begin_nested()
        try:
            if inserts:
                self._insert(conn, cap_usage, tuple(inserts[0]), [tuple(params.values()) for params in inserts])
            if updates and self.dialect == "postgresql":
                conn.exec_driver_sql(
                    "UPDATE ledger_cap_usage AS u SET used = u.used + v.delta, cap_limit = v.lim "
                    "FROM unnest(%(s)b::text[], %(delta)b::bigint[], %(lim)b::bigint[]) AS v(scope, delta, lim) WHERE u.scope = v.scope",
                    {name: [params[name] for params in updates] for name in ("s", "delta", "lim")},
                )
            elif updates:
                conn.execute(_ADD_TO_CAP, updates)
        except exc.IntegrityError:
            savepoint.rollback()
        else:
            savepoint.commit()
            return
        for params in inserts + updates:
            scope = params.get("scope") or params["s"]
            try:
                with conn.begin_nested():
                    conn.execute(cap_usage.insert() if "scope" in params else _ADD_TO_CAP, params)
            except exc.IntegrityError as error:
                raise CapOverrun(f"instruction {last_charge[scope]}: the database refused the change of cap {scope}: {str(error.orig).splitlines()[0]}") from error
        raise CapOverrun("the database refused the batch's cap changes: " + ", ".join(sorted(last_charge)))  # pragma: no cover - not reproducible one by one
