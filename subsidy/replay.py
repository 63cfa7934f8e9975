"""Replay a JSONL file of input messages through intake and the engine, into the ledger.

Each line is one event: ``{"topic": "...", "value": {...}}`` (the message as a JSON object)
or ``{"topic": "...", "raw": "..."}`` (the message's bytes as text, e.g. malformed JSON).
The line number is the event's offset (partition ``None``) in rejection records.

The running state is in memory (``rules.compact_state``: decided claims kept pickled). Claims are decided in event-time order, each clause's by
(occurred_at, source, event_id) whatever their place in the file, as the pipeline's decide stage
releases them (``rules.event_time``): a replay pays exactly what the pipeline pays. So the whole
file is read before the first claim is decided. Totals are summed from the engine's
instructions (net of clawbacks); a redelivered event (same source, event_id and content)
re-emits its decision and is neither paid nor counted twice. The listings of
``payee-exclusions`` lines are booked with the first batch, and the ledger holds the payments they
cover as the pipeline's does (sinks/ledger/holds.py); the accounts of ``payee-accounts`` lines are
stored before it, as ``subsidy payees import`` stores a CSV's. ``payment-status`` lines are booked
last, as the pipeline's ledger books them (``book_statuses``): one that fits no payment the ledger
sent is a rejection.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from rules.compact_state import CompactState
from rules.engine import Engine
from rules.event_time import order_key
from rules.exclusions import Listing, listing_from
from rules.inputs import EXCLUSIONS_TOPIC, PAYEE_ACCOUNTS_TOPIC, PAYMENT_STATUS_TOPIC
from rules.intake import Claim, Rejected, intake
from rules.money import format_fen, parse_amount
from rules.payee_accounts import account_from
from rules.payment_status import StatusMessage, status_from
from rules.policy import Policy
from rules.records import Decision, Instruction
from schemas.outputs import rejection_id, rejection_record

#: who the ledger's chain names as booking a replayed file's payment-status lines
REPLAY_ACTOR = "replay"


class ReplayError(Exception):
    """A problem with the replay's input a person must fix (one line, no traceback)."""


class LedgerLike(Protocol):
    def record(self, decisions: list[Decision], instructions: list[Instruction], rejections: list[dict], listings: Sequence[Listing] = ()) -> Any: ...

    def import_payee_accounts(self, messages: list[dict[str, Any]]) -> tuple[int, int]: ...

    def book_statuses(self, statuses: Sequence[StatusMessage], actor: str) -> Any: ...


@dataclass
class ReplaySummary:
    events: int = 0
    rejected: int = 0  # events (lines) rejected as a whole
    rejected_by_code: Counter = field(default_factory=Counter)
    granted: dict[str, dict[str, int]] = field(default_factory=dict)  # clause -> fiscal year -> fen, net
    decisions: int = 0
    instructions: int = 0
    clawbacks: int = 0
    duplicates: int = 0  # redeliveries: same decision re-emitted, not paid again
    listings: int = 0  # payee-exclusions messages accepted
    accounts: int = 0  # payee-accounts messages accepted
    statuses: int = 0  # payment-status messages booked (or already booked)
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def granted_json(self) -> dict[str, dict[str, str]]:
        return {
            clause: {year: format_fen(fen) for year, fen in sorted(years.items())}
            for clause, years in sorted(self.granted.items())
        }

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "rejected": self.rejected, "granted": self.granted_json()}


def _key_of(value: Any) -> bytes | None:
    """The Kafka key the message would have had: the beneficiary's identifier, or a payment's EndToEndId."""
    if isinstance(value, dict):
        party = value.get("beneficiary", value.get("payee"))  # payment-voids names the payee
        if isinstance(party, dict):
            for name in ("uscc", "person_id", "team_ref"):
                if isinstance(party.get(name), str):
                    return party[name].encode()
        if isinstance(value.get("end_to_end_id"), str):  # payment-status: a payment's answers in order, on one partition
            return value["end_to_end_id"].encode()
    return None


def parse_envelope(line: bytes) -> tuple[str, bytes, Any]:
    """One JSONL line -> (topic, message bytes, parsed value or None); raises Rejected."""
    try:
        envelope = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Rejected("malformed-line", f"line is not a JSON envelope {{\"topic\": ..., \"value\"|\"raw\": ...}}: {exc}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("topic"), str) or ("value" in envelope) == ("raw" in envelope):
        raise Rejected("malformed-line", "line must be {\"topic\": \"...\", \"value\": {...}} or {\"topic\": \"...\", \"raw\": \"...\"}")
    topic = envelope["topic"]
    if "raw" in envelope:
        if not isinstance(envelope["raw"], str):
            raise Rejected("malformed-line", "\"raw\" must be the message bytes as a string")
        return topic, envelope["raw"].encode("utf-8"), None
    value = envelope["value"]
    return topic, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), value


def count_lines(path: str | Path) -> int:
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            total += chunk.count(b"\n")
    return total


@dataclass(slots=True)
class _Line:
    """An event line whose claims are being decided. Its bytes are read again from ``offset`` for
    the rare rejection the engine makes: kept for every line of a year they were a fifth of
    the replay's memory (the parsed message alone ~1.9 KB a line)."""

    offset: int
    claims_left: int
    decided: int = 0
    first_rejection: tuple[str, str] | None = None


def _line_at(path: str | Path, offset: int) -> tuple[str, bytes, Any]:
    with open(path, "rb") as source:
        source.seek(offset)
        return parse_envelope(source.readline().rstrip(b"\r\n"))


def replay(path: str | Path, policy: Policy, ledger: LedgerLike | None, batch_lines: int = 1000, progress=None) -> ReplaySummary:
    """Run every line of ``path`` through intake, then its claims through the engine in event-time
    order (``rules.event_time``), as the pipeline decides them; write outcomes to ``ledger`` in batches."""
    started = time.monotonic()
    summary = ReplaySummary()
    granted = summary.granted
    open_lines: dict[int, _Line] = {}  # line number -> its claims not all decided yet
    claims: list[tuple[Claim, int]] = []  # with the line each came from
    refused_lines: list[tuple[int, dict]] = []  # lines intake rejected, with their rejection record
    envelopes = 0  # lines that are an event envelope: until one is, nothing is stored
    listings: list[Listing] = []  # of payee-exclusions lines: no claim, they hold payments
    listed_lines: list[int] = []
    accounts: list[dict[str, Any]] = []  # of payee-accounts lines: no claim, where payments go
    account_lines: list[int] = []
    statuses: list[StatusMessage] = []  # of payment-status lines: no claim, the bank's answers
    status_lines: list[int] = []

    try:
        source = open(path, "rb")
    except OSError as exc:
        raise ReplayError(f"cannot read events file {str(path)!r}: {exc.strerror}") from None
    with source:
        offset = 0
        for number, line in enumerate(source, start=1):
            line_offset, offset = offset, offset + len(line)
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            summary.events += 1
            topic, raw, value = "", line, None
            try:
                topic, raw, value = parse_envelope(line)
                envelopes += 1
                if topic == EXCLUSIONS_TOPIC:
                    listings.append(listing_from(raw, policy))
                    listed_lines.append(number)
                    continue
                if topic == PAYEE_ACCOUNTS_TOPIC:
                    accounts.append(account_from(raw, policy))
                    account_lines.append(number)
                    continue
                if topic == PAYMENT_STATUS_TOPIC:
                    statuses.append(_status(raw, policy, value, number))
                    status_lines.append(number)
                    continue
                found = intake(topic, raw, policy)
            except Rejected as exc:
                summary.rejected += 1
                summary.rejected_by_code[exc.code] += 1
                refused_lines.append((number, rejection_record(topic or "(none)", None, number, _key_of(value), raw, exc.code, exc.reason, dt.datetime.now(dt.timezone.utc))))
            else:
                open_lines[number] = _Line(line_offset, len(found))
                claims.extend((claim, number) for claim in found)
    if summary.events and not envelopes:
        raise ReplayError(f"{path}: not one of its {summary.events:,} lines is an event envelope {{\"topic\": ..., \"value\"|\"raw\": ...}}; "
                          "nothing was stored: is it the events file? (`subsidy generate` writes one)")

    decisions: list[Decision] = []
    instructions: list[Instruction] = []
    rejections: list[dict] = []
    batch: list[int] = []  # numbers of the lines whose outcomes are in the batch

    def done(number: int) -> None:
        batch.append(number)
        if progress is not None:
            progress.update(1)
        if len(batch) >= batch_lines:
            flush()

    def flush() -> None:
        nonlocal decisions, instructions, rejections, batch, listings
        if ledger is not None and (decisions or instructions or rejections or listings):
            try:
                ledger.record(decisions, instructions, rejections, listings)
            except Exception as exc:
                # which lines were not (all) stored: from the first of this batch or still open on
                exc.replay_first_line = min(batch + list(open_lines), default=None)  # type: ignore[attr-defined]
                raise
        decisions, instructions, rejections, batch, listings = [], [], [], [], []

    for number, record in refused_lines:
        rejections.append(record)
        done(number)
    summary.listings = len(listings)
    for number in listed_lines:
        done(number)
    summary.accounts = len(accounts)
    if ledger is not None and accounts:
        try:
            ledger.import_payee_accounts(accounts)
        except Exception as exc:
            exc.replay_first_line = min(account_lines)  # type: ignore[attr-defined]
            raise
    for number in account_lines:
        done(number)
    engine = Engine(policy, CompactState())
    claims.sort(key=lambda entry: order_key(entry[0]))
    for claim, number in claims:
        line = open_lines[number]
        outcome = engine.decide(claim)
        if outcome.rejection is not None:
            line.first_rejection = line.first_rejection or outcome.rejection
        else:
            line.decided += 1
            if outcome.duplicate:
                summary.duplicates += 1
            else:
                for decision in outcome.decisions:
                    summary.decisions += 1
                    summary.outcomes[decision.outcome] += 1
                    granted.setdefault(decision.clause_id, {}).setdefault(str(decision.fiscal_year), 0)
                for instruction in outcome.instructions:
                    summary.instructions += 1
                    if instruction.kind == "clawback":
                        summary.clawbacks += 1
                    years = granted.setdefault(instruction.clause_id, {})
                    year = str(instruction.fiscal_year)
                    years[year] = years.get(year, 0) + instruction.amount
                decisions.extend(outcome.decisions)
                instructions.extend(outcome.instructions)
        line.claims_left -= 1
        if line.claims_left:
            continue
        del open_lines[number]
        if line.first_rejection is not None:
            code, reason = line.first_rejection
            if line.decided == 0:  # the event as a whole was refused
                summary.rejected += 1
            summary.rejected_by_code[code] += 1
            topic, raw, value = _line_at(path, line.offset)
            rejections.append(rejection_record(topic, None, number, _key_of(value), raw, code, reason, dt.datetime.now(dt.timezone.utc)))
        done(number)
    flush()
    if ledger is not None and statuses:  # after the payments they may answer for
        try:
            booked = ledger.book_statuses(statuses, REPLAY_ACTOR)
        except Exception as exc:
            exc.replay_first_line = min(status_lines)  # type: ignore[attr-defined]
            raise
        summary.rejected += len(booked.rejections)
        summary.rejected_by_code.update(r["code"] for r in booked.rejections)
        summary.statuses = len(statuses) - len(booked.rejections)
    for number in status_lines:
        if progress is not None:
            progress.update(1)
    summary.seconds = time.monotonic() - started
    return summary


def _status(raw: bytes, policy: Policy, value: Any, number: int) -> StatusMessage:
    """A ``payment-status`` line as intake reads one, its rejection naming the line."""
    key = _key_of(value)
    return status_from(raw, policy, key, rejection_id(PAYMENT_STATUS_TOPIC, None, number, raw), lambda code, reason: rejection_record(
        PAYMENT_STATUS_TOPIC, None, number, key, raw, code, reason, dt.datetime.now(dt.timezone.utc)))


def normalise_totals(totals: Any) -> dict[str, dict[str, int]]:
    """``Ledger.granted_totals()`` in whatever reasonable shape -> clause -> year -> fen."""
    from decimal import Decimal

    out: dict[str, dict[str, int]] = {}
    for clause, years in dict(totals).items():
        for year, amount in dict(years).items():
            if isinstance(amount, str):
                fen = parse_amount(amount)
            elif isinstance(amount, Decimal):
                fen = int(amount.scaleb(2))
            elif isinstance(amount, int):
                fen = amount  # the project keeps money as int fen
            else:
                raise TypeError(f"unexpected amount {amount!r} in ledger totals")
            out.setdefault(str(clause), {})[str(year)] = fen
    return out


def check_against_ledger(summary: ReplaySummary, ledger_totals: dict[str, dict[str, int]]) -> list[str]:
    """Where the ledger holds less than this replay granted (it may hold more: other replays)."""
    problems = []
    for clause, years in sorted(summary.granted.items()):
        for year, fen in sorted(years.items()):
            have = ledger_totals.get(clause, {}).get(year, 0)
            if have < fen:
                problems.append(f"{clause} {year}: ledger has {format_fen(have)}, replay granted {format_fen(fen)}")
    return problems


def format_summary(summary: ReplaySummary, policy: Policy, ledger_location: str, ledger_note: str | None) -> str:
    lines = [
        f"policy      {policy.policy_id} {policy.version}",
        f"events      {summary.events:,} in {summary.seconds:.1f} s ({summary.events / max(summary.seconds, 1e-9):,.0f} events/s)",
        f"rejected    {summary.rejected:,}" + (" (" + ", ".join(f"{code} {n}" for code, n in sorted(summary.rejected_by_code.items())) + ")" if summary.rejected_by_code else ""),
        f"duplicates  {summary.duplicates:,} redelivered events, decided once",
        f"listings    {summary.listings:,} payee-exclusions messages (their payees' payments held: `subsidy ledger holds`)",
        f"accounts    {summary.accounts:,} payee-accounts messages (where payments go: `subsidy payees list`)",
        f"statuses    {summary.statuses:,} payment-status messages booked (`subsidy payments status`)",
        f"decisions   {summary.decisions:,} (" + ", ".join(f"{k} {v:,}" for k, v in sorted(summary.outcomes.items())) + ")",
        f"instructions {summary.instructions:,} ({summary.clawbacks:,} clawbacks)",
        "granted (net of clawbacks, CNY):",
    ]
    width = max((len(c) for c in summary.granted), default=10)
    total = 0
    for clause, years in sorted(summary.granted.items()):
        for year, fen in sorted(years.items()):
            total += fen
            lines.append(f"  {clause:<{width}}  {year}  {format_fen(fen):>16}")
    lines.append(f"  {'total':<{width}}        {format_fen(total):>16}")
    lines.append(f"ledger      {ledger_location}" + (f" ({ledger_note})" if ledger_note else ""))
    return "\n".join(lines)
