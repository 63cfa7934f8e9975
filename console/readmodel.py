"""Read-only queries over the ledger's tables, shaped for the console.

The database is opened so that it cannot be written through this engine: SQLite through a
``mode=ro`` URI plus ``PRAGMA query_only``, PostgreSQL with ``default_transaction_read_only``
on every connection. No schema migration is run (the ledger owns its schema).

Money is ``int`` fen everywhere, with a decimal string next to it (``granted_fen`` and
``granted``); floats appear only for ratios and rates that are not money.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from console.payments import payee_payments, payments_overview
from console.users import Operator, authenticate, has_users
from rules.exclusions import Exclusions, Listing
from rules.money import format_fen, parse_amount
from rules.policy import Clause, Policy
from sinks.ledger import LedgerError, parse_ledger_url, shown_url
from sinks.ledger.schema import (
    accounts,
    cap_charges,
    cap_usage,
    decisions_t,
    exclusion_listings,
    hold_releases,
    holds_t,
    instructions_t,
    operator_actions,
    rejections_t,
)

TREND_DAYS = 30
MAX_RECENT_SCAN = 5000
MAX_ORIGINAL_CHARS = 16_000
#: how long the hash chain's check against the newest checkpoint is shown before it is walked again
INTEGRITY_SECONDS = 60.0
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


class ConsoleError(Exception):
    """The console cannot read the ledger (missing file, no schema, database down)."""


def make_readonly_engine(url: str) -> Engine:
    try:
        parsed = parse_ledger_url(url)
    except LedgerError as error:
        raise ConsoleError(f"ledger {shown_url(url)}: {error}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise ConsoleError("the console needs a ledger file (sqlite:///path), not an in-memory database")
        if database.startswith("file:"):  # already a URI: force read-only on it
            uri = database.split("?", 1)[0]
        else:
            uri = "file:" + urllib.parse.quote(str(Path(database).expanduser().resolve()))
        engine = sa.create_engine(f"sqlite:///{uri}?mode=ro&uri=true", connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _sqlite_ro(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.execute("PRAGMA busy_timeout = 10000")
            cursor.close()

        return engine
    if backend == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"application_name": "subsidy-console", "connect_timeout": 10})

        @event.listens_for(engine, "connect")
        def _pg_ro(dbapi_connection, _record):  # pragma: no cover - needs PostgreSQL
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            cursor.execute("SET default_transaction_read_only = on")
            cursor.execute("SET statement_timeout = '10s'")
            cursor.close()
            dbapi_connection.autocommit = autocommit

        return engine
    raise ConsoleError(f"ledger URL {shown_url(url)!r}: only sqlite:/// and postgresql+psycopg:// are supported")


def money(fen: int | None) -> str | None:
    return None if fen is None else format_fen(int(fen))


def _fen_of(text: Any) -> int:
    try:
        return parse_amount(text) if text is not None else 0
    except ValueError:
        return 0


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def programme_caps(clause: Clause):
    """The clause's programme-wide caps (``per: []``): money budgets and count limits."""
    return [c for c in clause.caps if not c.per]


class LedgerReader:
    def __init__(self, url: str, policy: Policy, *, today: dt.date | None = None):
        self.url = url
        self.policy = policy
        self.engine = make_readonly_engine(url)
        self.tz = ZoneInfo(policy.timezone)
        self._today = today
        # The delay histogram is kept incrementally (new decisions since the last look).
        self._delay_cursor = ""
        self._delay_counts = [0] * (len(DELAY_BUCKETS) + 1)
        self._delay_sum = 0.0
        self._delay_count = 0
        self._delay_lock = threading.Lock()
        self._integrity: tuple[float, dict[str, Any]] | None = None
        self._integrity_lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def today(self) -> dt.date:
        return self._today or dt.datetime.now(self.tz).date()

    def clause_info(self, clause_id: str) -> dict[str, Any]:
        clause = self.policy.clauses.get(clause_id)
        return {"clause_id": clause_id, "title": clause.title if clause else None, "article": clause.article if clause else None,
                "programme": self.policy.programme_of(clause_id).policy_id if clause else None}

    # -- budgets -------------------------------------------------------------------------

    def budgets(self) -> dict[str, Any]:
        daily: dict[tuple[str, int], list[tuple[str, int]]] = {}
        query = (
            sa.select(instructions_t.c.clause_id, instructions_t.c.fiscal_year, instructions_t.c.value_date, sa.func.sum(instructions_t.c.amount_fen))
            .group_by(instructions_t.c.clause_id, instructions_t.c.fiscal_year, instructions_t.c.value_date)
            .order_by(instructions_t.c.clause_id, instructions_t.c.fiscal_year, instructions_t.c.value_date)
        )
        with self.engine.connect() as conn:
            for clause_id, year, day, fen in conn.execute(query):
                daily.setdefault((clause_id, int(year)), []).append((day, int(fen)))
            scopes = {}
            for clause in self.policy.clauses.values():
                for cap in programme_caps(clause):
                    years = {y for (c, y) in daily if c == clause.id} or {self.today().year}
                    for year in years:
                        scope = json.dumps(["cap", clause.id, cap.id, str(year) if cap.period == "fiscal-year" else "ever"], ensure_ascii=False)
                        scopes[scope] = None
            if scopes:
                for row in conn.execute(sa.select(cap_usage).where(cap_usage.c.scope.in_(list(scopes)))):
                    scopes[row.scope] = {"kind": row.kind, "limit": int(row.cap_limit), "used": int(row.used)}
            budget_declines = self._budget_declines(conn, daily)
        keys = set(daily)
        for clause in self.policy.clauses.values():
            if any(c.amount for c in programme_caps(clause)) and not any(c == clause.id for (c, _y) in keys):
                keys.add((clause.id, self.today().year))
        order = list(self.policy.clauses)
        items = [self._budget(clause_id, year, daily.get((clause_id, year), []), scopes, budget_declines.get((clause_id, year))) for clause_id, year in sorted(keys, key=lambda k: (-k[1], order.index(k[0]) if k[0] in order else len(order), k[0]))]
        return {"as_of": self.today().isoformat(), "currency": "CNY", "trend_days": TREND_DAYS, "budgets": items}

    def _budget_declines(self, conn, daily) -> dict[tuple[str, int], tuple[int, str | None]]:
        """(clause, year) -> (claims declined or cut by the programme budget, local date of the first)."""
        out: dict[tuple[str, int], tuple[int, str | None]] = {}
        for clause in self.policy.clauses.values():
            cap = next((c for c in programme_caps(clause) if c.amount), None)
            if cap is None:
                continue
            # bodies are stored as canonical JSON (sorted keys, no spaces): match the field exactly
            needle = f'%"declined_by":{json.dumps(cap.id)}%'
            base = sa.and_(decisions_t.c.clause_id == clause.id, decisions_t.c.outcome.in_(["declined", "partly-granted"]), decisions_t.c.body.like(needle))
            for year, count in conn.execute(sa.select(decisions_t.c.fiscal_year, sa.func.count()).where(base).group_by(decisions_t.c.fiscal_year)):
                first = None
                # the earliest batches hold the earliest events; enough to find the first day
                for (body,) in conn.execute(sa.select(decisions_t.c.body).where(base, decisions_t.c.fiscal_year == year).order_by(decisions_t.c.recorded_at).limit(500)):
                    at = _parse_time(json.loads(body).get("occurred_at"))
                    if at is not None and (first is None or at < first):
                        first = at
                out[(clause.id, int(year))] = (int(count), first.astimezone(self.tz).date().isoformat() if first else None)
        return out

    def _budget(self, clause_id: str, year: int, days: list[tuple[str, int]], scopes: dict, declines: tuple[int, str | None] | None = None) -> dict[str, Any]:
        clause = self.policy.clauses.get(clause_id)
        year_start, year_end = dt.date(year, 1, 1), dt.date(year, 12, 31)
        budget_cap = next((c for c in programme_caps(clause) if c.amount), None) if clause else None
        budget_fen = None
        budget_source = None
        if budget_cap is not None:
            scope = json.dumps(["cap", clause_id, budget_cap.id, str(year) if budget_cap.period == "fiscal-year" else "ever"], ensure_ascii=False)
            usage = scopes.get(scope)
            if usage is not None:
                budget_fen, budget_source = usage["limit"], "ledger cap usage"
            else:
                at = min(max(self.today(), year_start), year_end)
                budget_fen = budget_cap.amount.at(at) or budget_cap.amount.values[-1].value
                budget_source = "policy"
        series = []
        running = 0
        for day, fen in days:
            running += fen
            series.append({"date": day, "granted_fen": running, "granted": money(running)})
        granted = running
        last_day = dt.date.fromisoformat(days[-1][0]) if days else None
        today = self.today()
        as_of = max(filter(None, [last_day, min(max(today, year_start), year_end)]))
        counts = []
        if clause:
            for cap in programme_caps(clause):
                if cap.count:
                    scope = json.dumps(["cap", clause_id, cap.id, str(year) if cap.period == "fiscal-year" else "ever"], ensure_ascii=False)
                    usage = scopes.get(scope) or {"limit": cap.count.at(min(max(today, year_start), year_end)) or cap.count.values[-1].value, "used": 0}
                    counts.append({"cap": cap.id, "limit": usage["limit"], "used": usage["used"], "remaining": usage["limit"] - usage["used"]})
        out = {
            **self.clause_info(clause_id),
            "fiscal_year": year,
            "budget_cap": budget_cap.id if budget_cap else None,
            "budget_fen": budget_fen,
            "budget": money(budget_fen),
            "budget_source": budget_source,
            "granted_fen": granted,
            "granted": money(granted),
            "remaining_fen": None if budget_fen is None else budget_fen - granted,
            "remaining": None if budget_fen is None else money(budget_fen - granted),
            "used_ratio": None if not budget_fen else round(granted / budget_fen, 6),
            "declined_by_budget": declines[0] if declines else 0,
            "count_limits": counts,
            "series": series,
            "projection": self._projection(series, budget_fen, as_of, year_end, declines[1] if declines else None),
        }
        return out

    def _projection(self, series: list[dict], budget_fen: int | None, as_of: dt.date, year_end: dt.date, first_budget_decline: str | None = None) -> dict[str, Any]:
        window_from = as_of - dt.timedelta(days=TREND_DAYS - 1)
        result: dict[str, Any] = {
            "method": f"least-squares line through the daily cumulative granted amount of the last {TREND_DAYS} days",
            "as_of": as_of.isoformat(),
            "window_from": window_from.isoformat(),
            "window_to": as_of.isoformat(),
            "slope_fen_per_day": 0,
            "slope_per_day": money(0),
            "exhaustion_date": None,
            "within_fiscal_year": False,
            "status": "no-budget" if budget_fen is None else "no-trend",
            "year_end_granted_fen": None,
            "year_end_granted": None,
        }
        if not series:
            return result
        # cumulative value at the end of each day of the window (carried forward)
        points: dict[dt.date, int] = {dt.date.fromisoformat(p["date"]): p["granted_fen"] for p in series}
        before = [fen for day, fen in points.items() if day < window_from]
        value = before[-1] if before else 0
        xs, ys = [], []
        for i in range(TREND_DAYS):
            day = window_from + dt.timedelta(days=i)
            value = points.get(day, value)
            xs.append(i)
            ys.append(value)
        n = len(xs)
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
        slope_fen = int(round(slope))
        current = series[-1]["granted_fen"]
        result["slope_fen_per_day"] = slope_fen
        result["slope_per_day"] = money(slope_fen)
        if as_of < year_end:
            at_year_end = current + max(slope_fen, 0) * (year_end - as_of).days
            result["year_end_granted_fen"] = at_year_end
            result["year_end_granted"] = money(at_year_end)
        if budget_fen is None:
            return result
        if current >= budget_fen or first_budget_decline:
            # run out: the first day the total reached the budget, or a claim was cut by it
            reached = next((p["date"] for p in series if p["granted_fen"] >= budget_fen), None)
            first = min(filter(None, [reached, first_budget_decline]))
            result.update(status="exhausted", exhaustion_date=first, within_fiscal_year=True)
        elif slope_fen > 0:
            days = math.ceil((budget_fen - current) / slope_fen)
            when = as_of + dt.timedelta(days=days) if days < 36500 else None
            result.update(status="projected", exhaustion_date=when.isoformat() if when else None, within_fiscal_year=bool(when and when <= year_end))
        return result

    # -- caps ----------------------------------------------------------------------------

    def nearest_caps(self, limit: int = 20, kind: str = "amount") -> dict[str, Any]:
        rows = []
        query = sa.select(cap_usage)
        if kind != "all":
            query = query.where(cap_usage.c.kind == kind)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                try:
                    scope = json.loads(row.scope)
                except ValueError:
                    continue
                if not isinstance(scope, list) or len(scope) <= 4 or not row.cap_limit:
                    continue  # programme-wide caps are shown as budgets
                rows.append((int(row.used) / int(row.cap_limit), int(row.used), row, scope))
            rows.sort(key=lambda r: (-r[0], -r[1], r[2].scope))
            top = rows[:limit]
            latest: dict[str, dict] = {}
            if top:
                q = (
                    sa.select(cap_charges.c.scope, instructions_t.c.body, instructions_t.c.journal_seq)
                    .join(instructions_t, instructions_t.c.instruction_id == cap_charges.c.instruction_id)
                    .where(cap_charges.c.scope.in_([r[2].scope for r in top]))
                )
                best: dict[str, int] = {}
                for scope, body, seq in conn.execute(q):
                    if seq is not None and seq >= best.get(scope, -1):
                        best[scope] = seq
                        latest[scope] = json.loads(body)
        items = []
        for ratio, used, row, scope in top:
            _, clause_id, cap_id, period, *who = scope
            clause = self.policy.clauses.get(clause_id)
            cap = next((c for c in clause.caps if c.id == cap_id), None) if clause else None
            last = latest.get(row.scope) or {}
            beneficiary = last.get("beneficiary") or {}
            payee = last.get("payee") or {}
            item = {
                **self.clause_info(clause_id),
                "cap": cap_id,
                "per": list(cap.per) if cap else [],
                "period": period,
                "who": who,
                "scope": row.scope,
                "kind": row.kind,
                "beneficiary": {"id": beneficiary.get("id"), "name": beneficiary.get("name"), "kind": beneficiary.get("kind")} if beneficiary else None,
                "payee": {"id": payee.get("id"), "name": payee.get("name"), "kind": payee.get("kind")} if payee else None,
                "used_ratio": round(ratio, 6),
            }
            if row.kind == "amount":
                item.update(limit_fen=int(row.cap_limit), limit=money(row.cap_limit), used_fen=used, used=money(used), room_fen=int(row.cap_limit) - used, room=money(int(row.cap_limit) - used))
            else:
                item.update(limit_count=int(row.cap_limit), used_count=used, room_count=int(row.cap_limit) - used)
            items.append(item)
        return {"limit": limit, "kind": kind, "caps_tracked": len(rows), "caps": items}

    # -- decisions -----------------------------------------------------------------------

    def recent_decisions(self, limit: int = 50, outcome: str | None = None, clause: str | None = None) -> dict[str, Any]:
        filters = []
        if outcome:
            filters.append(decisions_t.c.outcome == outcome)
        if clause:
            filters.append(decisions_t.c.clause_id == clause)
        with self.engine.connect() as conn:
            # Newest batches first; within a batch (one recorded_at) by the event's time.
            cutoff = conn.execute(
                sa.select(decisions_t.c.recorded_at).where(*filters).order_by(decisions_t.c.recorded_at.desc()).offset(max(limit - 1, 0)).limit(1)
            ).scalar()
            query = sa.select(decisions_t.c.body, decisions_t.c.recorded_at).where(*filters).order_by(decisions_t.c.recorded_at.desc()).limit(MAX_RECENT_SCAN)
            if cutoff is not None:
                query = query.where(decisions_t.c.recorded_at >= cutoff)
            rows = [(json.loads(body), recorded) for body, recorded in conn.execute(query)]
        rows.sort(key=lambda r: (r[1] or "", _parse_time(r[0].get("occurred_at")) or dt.datetime.min.replace(tzinfo=dt.timezone.utc), r[0].get("decision_id", "")), reverse=True)
        items = []
        for body, recorded in rows[:limit]:
            items.append({
                **body,
                "clause_title": self.clause_info(body.get("clause_id", ""))["title"],
                "granted_fen": _fen_of(body.get("granted")),
                "declined_fen": _fen_of(body.get("declined")),
                "recorded_at": recorded,
            })
        return {"limit": limit, "decisions": items}

    # -- rejections ----------------------------------------------------------------------

    def rejections(self, examples: int = 3) -> dict[str, Any]:
        groups = []
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(rejections_t)).scalar_one()
            by_code = conn.execute(
                sa.select(rejections_t.c.code, sa.func.count(), sa.func.max(rejections_t.c.recorded_at)).group_by(rejections_t.c.code).order_by(sa.func.count().desc(), rejections_t.c.code)
            ).all()
            for code, count, last in by_code:
                topics = {t: n for t, n in conn.execute(sa.select(rejections_t.c.topic, sa.func.count()).where(rejections_t.c.code == code).group_by(rejections_t.c.topic))}
                bodies = conn.execute(
                    sa.select(rejections_t.c.body, rejections_t.c.recorded_at).where(rejections_t.c.code == code).order_by(rejections_t.c.recorded_at.desc(), rejections_t.c.rejection_id).limit(examples)
                ).all()
                shown = []
                for body, recorded in bodies:
                    record = json.loads(body)
                    text = record.get("original_text")
                    # cut here, or already by the pipeline (an input over 64 KiB, contract v1.1)
                    truncated = (isinstance(text, str) and len(text) > MAX_ORIGINAL_CHARS) or bool(record.get("original_truncated"))
                    shown.append({
                        "rejection_id": record.get("rejection_id"),
                        "topic": record.get("topic"),
                        "partition": record.get("partition"),
                        "offset": record.get("offset"),
                        "key": record.get("key"),
                        "reason": record.get("reason"),
                        "original_text": text[:MAX_ORIGINAL_CHARS] if isinstance(text, str) else None,
                        "original_truncated": truncated,
                        "original_base64": None if isinstance(text, str) else record.get("original"),
                        "rejected_at": record.get("rejected_at"),
                        "recorded_at": recorded,
                    })
                groups.append({"code": code, "count": int(count), "last_recorded_at": last, "by_topic": topics, "examples": shown})
        return {"total": int(total), "groups": groups}

    # -- held payments -------------------------------------------------------------------

    def held_payments(self, limit: int = 100) -> dict[str, Any]:
        """Payments held today (a party listed on payee-exclusions, sinks/ledger/holds.py), oldest
        hold first: payee, amount, the listing as its newest message gives it, and the day the
        payment may be paid from (null while the listing has no end)."""
        h, r, i = holds_t, hold_releases, instructions_t
        held_today = sa.or_(r.c.released_on.is_(None), r.c.released_on > self.today().isoformat())
        joined = h.join(i, i.c.instruction_id == h.c.instruction_id).outerjoin(r, r.c.instruction_id == h.c.instruction_id)
        with self.engine.connect() as conn:
            count, total = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(i.c.amount_fen), 0)).select_from(joined).where(held_today)).one()
            rows = conn.execute(
                sa.select(h.c.instruction_id, h.c.listed_party, h.c.list, h.c.reference, h.c.held_from, r.c.released_on, i.c.payee_id, i.c.amount_fen, i.c.clause_id, i.c.fiscal_year, accounts.c.name)
                .select_from(joined.outerjoin(accounts, accounts.c.account_id == sa.literal("payable:") + i.c.payee_id))
                .where(held_today).order_by(h.c.held_from, h.c.instruction_id).limit(limit)
            ).all()
            parties = sorted({row.listed_party for row in rows})
            known = Exclusions(Listing.from_dict(json.loads(body)) for (body,) in conn.execute(sa.select(exclusion_listings.c.body).where(exclusion_listings.c.payee_id.in_(parties))))
        newest = {(listing.payee_id, listing.list, listing.reference): listing for party in parties for listing in known.listings(party)}
        items = []
        for row in rows:
            listing = newest.get((row.listed_party, row.list, row.reference))
            items.append({
                "instruction_id": row.instruction_id, "payee_id": row.payee_id, "payee_name": row.name, "clause_id": row.clause_id, "fiscal_year": row.fiscal_year,
                "amount_fen": int(row.amount_fen), "amount": format_fen(int(row.amount_fen)), "held_from": row.held_from, "payable_from": row.released_on,
                "listing": {"listed_party": row.listed_party, "list": row.list, "reference": row.reference,
                            "from": None if listing is None else listing.starts.isoformat(),
                            "to": None if listing is None or listing.ends is None else listing.ends.isoformat()},
            })
        return {"as_of": self.today().isoformat(), "count": int(count), "total_fen": int(total), "total": format_fen(int(total)), "limit": limit, "holds": items}

    def ledger_integrity(self) -> dict[str, Any]:
        """The newest signed checkpoint of $SUBSIDY_CHECKPOINTS and whether the hash chain verifies
        against it (sinks/ledger/checkpoints.py); walked at most once a minute, the chain being long."""
        now = time.monotonic()
        with self._integrity_lock:
            if self._integrity is not None and now - self._integrity[0] < INTEGRITY_SECONDS:
                return self._integrity[1]
            answer = self._check_integrity()
            self._integrity = (now, answer)
            return answer

    def _check_integrity(self) -> dict[str, Any]:
        from sinks.ledger import Ledger
        from sinks.ledger.checkpoints import CHECKPOINTS_ENV, CheckpointError, against_checkpoints, load_public_keys, public_key_paths, read_checkpoints

        source = os.environ.get(CHECKPOINTS_ENV)
        answer: dict[str, Any] = {"source": source, "checkpoint": None, "verified": None, "problems": [], "notes": [], "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        if not source:
            answer["notes"] = [f"no checkpoints to compare with: set ${CHECKPOINTS_ENV} (a file of them, or kafka://HOST:PORT) and the public key"]
            return answer
        try:
            latest = max(read_checkpoints(source), key=lambda c: (c.seq, c.time), default=None)
            keys = load_public_keys(public_key_paths())
        except CheckpointError as error:
            answer["problems"] = [str(error)]
            return answer
        if latest is None:
            answer["notes"] = [f"no checkpoint published in {source} yet"]
            return answer
        answer["checkpoint"] = {"seq": latest.seq, "head_hash": latest.head_hash, "entries": latest.entries, "time": latest.time, "key_id": latest.key_id}
        walk = Ledger(self.engine).walk_chain(at={latest.seq})
        problems, notes = against_checkpoints([latest], keys, walk.head_seq, walk.at)
        answer.update(verified=not (walk.problems or problems), problems=(walk.problems + problems)[:20], notes=notes, chain_seq=walk.head_seq)
        return answer

    def payments(self, limit: int = 50) -> dict[str, Any]:
        """The Payments page (console/payments.py)."""
        return payments_overview(self.engine, self.policy.timezone, self.today(), limit)

    def payee_payments(self, payee_id: str, limit: int = 200) -> dict[str, Any] | None:
        """A payee's payments and where each stands (console/payments.py); None for an unknown payee."""
        return payee_payments(self.engine, payee_id, self.today(), limit)

    def health(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(decisions_t)).scalar_one()
        return {"ok": True, "ledger": shown_url(self.url)}

    # -- operators and their holds -------------------------------------------------------

    def login_required(self) -> bool:
        with self.engine.connect() as conn:
            return has_users(conn)

    def authenticate(self, name: str, password: str) -> Operator | None:
        with self.engine.connect() as conn:
            return authenticate(conn, name, password)

    def payee_known(self, payee_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(accounts.c.account_id).where(accounts.c.payee_id == payee_id).limit(1)).first() is not None

    def holds(self) -> dict[str, Any]:
        """Payees on hold: those whose latest hold or release is a hold, with who placed it, when and why."""
        latest: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(operator_actions.name):
                return {"holds": []}
            query = (sa.select(operator_actions).where(operator_actions.c.action.in_(("hold", "release")))
                     .order_by(operator_actions.c.recorded_at, operator_actions.c.action_id))
            for row in conn.execute(query).mappings():
                latest[row["subject"]] = dict(row)
        held = [{"payee_id": subject, "placed_by": row["user_name"], "placed_at": row["recorded_at"], "reason": row["reason"]}
                for subject, row in latest.items() if row["action"] == "hold"]
        return {"holds": sorted(held, key=lambda hold: hold["placed_at"], reverse=True)}

    # -- summary and metrics -------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            outcomes = {o: int(n) for o, n in conn.execute(sa.select(decisions_t.c.outcome, sa.func.count()).group_by(decisions_t.c.outcome))}
            by_clause_outcome = [
                {"clause_id": c, "outcome": o, "count": int(n)}
                for c, o, n in conn.execute(sa.select(decisions_t.c.clause_id, decisions_t.c.outcome, sa.func.count()).group_by(decisions_t.c.clause_id, decisions_t.c.outcome))
            ]
            # a clause has one trigger topic; an event deciding several clauses is counted once
            topic_expr = sa.case({c.id: c.topic for c in self.policy.clauses.values()}, value=decisions_t.c.clause_id, else_="(unknown clause)")
            event_key = decisions_t.c.source + sa.literal("\x1f") + decisions_t.c.event_id
            events = {t: int(n) for t, n in conn.execute(sa.select(topic_expr, sa.func.count(sa.distinct(event_key))).group_by(topic_expr))}
            rejected_by_topic = {t: int(n) for t, n in conn.execute(sa.select(rejections_t.c.topic, sa.func.count()).group_by(rejections_t.c.topic))}
            rejected_by_code = {c: int(n) for c, n in conn.execute(sa.select(rejections_t.c.code, sa.func.count()).group_by(rejections_t.c.code))}
            instr = {k: (int(n), int(s or 0)) for k, n, s in conn.execute(sa.select(instructions_t.c.kind, sa.func.count(), sa.func.sum(instructions_t.c.amount_fen)).group_by(instructions_t.c.kind))}
            last_recorded = conn.execute(sa.select(sa.func.max(decisions_t.c.recorded_at))).scalar()
        paid = instr.get("payment", (0, 0))
        clawed = instr.get("clawback", (0, 0))
        return {
            "policy": {"policy_id": self.policy.policy_id, "version": self.policy.version, "title": self.policy.title},
            "ledger": shown_url(self.url),
            "decisions": sum(outcomes.values()),
            "decisions_by_outcome": outcomes,
            "decisions_by_clause_outcome": by_clause_outcome,
            "events_decided_by_topic": events,
            "rejections": sum(rejected_by_code.values()),
            "rejections_by_topic": rejected_by_topic,
            "rejections_by_code": rejected_by_code,
            "payments": paid[0],
            "paid_fen": paid[1],
            "paid": money(paid[1]),
            "clawbacks": clawed[0],
            "clawed_back_fen": -clawed[1],
            "clawed_back": money(-clawed[1]),
            "net_granted_fen": paid[1] + clawed[1],
            "net_granted": money(paid[1] + clawed[1]),
            "last_recorded_at": last_recorded,
        }

    def record_delays(self, max_rows: int = 20000) -> dict[str, Any]:
        """Histogram of occurred_at -> recorded in the ledger, over decisions seen so far (incremental)."""
        with self._delay_lock:
            return self._record_delays(max_rows)

    def _record_delays(self, max_rows: int) -> dict[str, Any]:
        query = (
            sa.select(decisions_t.c.body, decisions_t.c.recorded_at)
            .where(decisions_t.c.recorded_at > self._delay_cursor)
            .order_by(decisions_t.c.recorded_at)
            .limit(max_rows)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        # only whole batches: a batch (one recorded_at) cut by the limit is read next time
        if len(rows) == max_rows and rows[0][1] != rows[-1][1]:
            last = rows[-1][1]
            rows = [r for r in rows if r[1] != last]
        for body, recorded in rows:
            occurred = _parse_time(json.loads(body).get("occurred_at"))
            at = _parse_time(recorded)
            if occurred is None or at is None:
                continue
            delay = max(0.0, (at - occurred).total_seconds())
            for i, bound in enumerate(DELAY_BUCKETS):
                if delay <= bound:
                    self._delay_counts[i] += 1
                    break
            else:
                self._delay_counts[-1] += 1
            self._delay_sum += delay
            self._delay_count += 1
        if rows:
            self._delay_cursor = rows[-1][1]
        cumulative, buckets = 0, []
        for bound, n in zip(list(DELAY_BUCKETS) + [math.inf], self._delay_counts):
            cumulative += n
            buckets.append((bound, cumulative))
        return {"buckets": buckets, "sum": self._delay_sum, "count": self._delay_count}
