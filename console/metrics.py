"""The console's Prometheus exposition: gauges derived from the ledger plus the workers' metrics."""

from __future__ import annotations

import math
import urllib.parse

from console.promtext import Exposition, Family, Sample
from console.readmodel import LedgerReader
from console.streams import StreamScraper

CONSOLE_FAMILIES = (
    "subsidy_console_ledger_up",
    "subsidy_granted_fen_total",
    "subsidy_budget_fen",
    "subsidy_budget_remaining_fen",
    "subsidy_budget_used_ratio",
    "subsidy_budget_projected_exhaustion_timestamp_seconds",
    "subsidy_ledger_events_total",
    "subsidy_ledger_decisions_total",
    "subsidy_ledger_rejections_total",
    "subsidy_ledger_instructions_total",
    "subsidy_ledger_record_delay_seconds",
    "subsidy_cap_used_ratio_max",
    "subsidy_console_worker_up",
)


def worker_label(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return parsed.netloc or url


def worker_family_name(name: str) -> str:
    return "subsidy_worker_" + name.removeprefix("subsidy_")


def renamed(family: Family, name: str) -> Family:
    samples = [Sample(name + sample.name[len(family.name):], sample.labels, sample.value) for sample in family.samples]
    return Family(name, family.type, family.help, samples)


def ledger_exposition(reader: LedgerReader) -> Exposition:
    """Everything the ledger says; raises if the ledger cannot be read (the caller reports it)."""
    import datetime as dt

    out = Exposition()
    budgets = reader.budgets()["budgets"]
    summary = reader.summary()
    delays = reader.record_delays()
    caps = reader.nearest_caps(limit=1, kind="amount")["caps"]

    for b in budgets:
        labels = {"clause": b["clause_id"], "fiscal_year": str(b["fiscal_year"])}
        out.add("subsidy_granted_fen_total", "gauge", "Net amount granted (payments minus clawbacks) per clause and fiscal year, in fen, from the ledger journal.", b["granted_fen"], labels)
    for b in budgets:
        if b["budget_fen"] is None:
            continue
        labels = {"clause": b["clause_id"], "fiscal_year": str(b["fiscal_year"])}
        out.add("subsidy_budget_fen", "gauge", "Programme budget (a cap with no `per`) per clause and fiscal year, in fen.", b["budget_fen"], labels)
        out.add("subsidy_budget_remaining_fen", "gauge", "Programme budget left per clause and fiscal year, in fen.", b["remaining_fen"], labels)
        out.add("subsidy_budget_used_ratio", "gauge", "Share of the programme budget granted (0..1).", b["used_ratio"] or 0.0, labels)
        when = b["projection"]["exhaustion_date"]
        if when:
            midnight = dt.datetime.fromisoformat(when).replace(tzinfo=reader.tz)
            out.add("subsidy_budget_projected_exhaustion_timestamp_seconds", "gauge", "Projected (or actual) date the budget runs out, by the 30-day linear trend; Unix time of that day's start in the policy time zone.", int(midnight.timestamp()), labels)

    topics = set(summary["events_decided_by_topic"]) | set(summary["rejections_by_topic"])
    for topic in sorted(topics):
        decided = summary["events_decided_by_topic"].get(topic, 0)
        rejected = summary["rejections_by_topic"].get(topic, 0)
        out.add("subsidy_ledger_events_total", "counter", "Input events in the ledger per topic: decided (distinct source event ids with a decision) or rejected.", decided, {"topic": topic, "result": "decided"}, "subsidy_ledger_events_total")
        out.add("subsidy_ledger_events_total", "counter", "", rejected, {"topic": topic, "result": "rejected"}, "subsidy_ledger_events_total")
    for row in sorted(summary["decisions_by_clause_outcome"], key=lambda r: (r["outcome"], r["clause_id"])):
        out.add("subsidy_ledger_decisions_total", "counter", "Decisions in the ledger by outcome and clause.", row["count"], {"outcome": row["outcome"], "clause": row["clause_id"]})
    for code, count in sorted(summary["rejections_by_code"].items()):
        out.add("subsidy_ledger_rejections_total", "counter", "Rejected inputs in the ledger by reason code.", count, {"reason": code})
    out.add("subsidy_ledger_instructions_total", "counter", "Disbursement instructions in the ledger by kind.", summary["payments"], {"kind": "payment"})
    out.add("subsidy_ledger_instructions_total", "counter", "", summary["clawbacks"], {"kind": "clawback"})

    help_delay = "Seconds from an event's occurred_at to its decision being recorded in the ledger (end-to-end latency as the ledger sees it; replays of old events land in the top buckets)."
    for bound, cumulative in delays["buckets"]:
        out.add("subsidy_ledger_record_delay_seconds", "histogram", help_delay, cumulative, {"le": "+Inf" if math.isinf(bound) else repr(float(bound))}, "subsidy_ledger_record_delay_seconds_bucket")
    out.add("subsidy_ledger_record_delay_seconds", "histogram", help_delay, delays["sum"], None, "subsidy_ledger_record_delay_seconds_sum")
    out.add("subsidy_ledger_record_delay_seconds", "histogram", help_delay, delays["count"], None, "subsidy_ledger_record_delay_seconds_count")

    if caps:
        out.add("subsidy_cap_used_ratio_max", "gauge", "Highest used/limit ratio among per-payee or per-subject money caps (how close the nearest payee is to a cap).", caps[0]["used_ratio"])
    return out


def render(reader: LedgerReader, scraper: StreamScraper) -> str:
    out = Exposition()
    try:
        ledger = ledger_exposition(reader)
    except Exception:  # noqa: BLE001 - reported as ledger_up 0, the scrape itself still works
        out.add("subsidy_console_ledger_up", "gauge", "1 if the console could read the ledger for this scrape.", 0)
    else:
        out.add("subsidy_console_ledger_up", "gauge", "1 if the console could read the ledger for this scrape.", 1)
        out.families.update(ledger.families)
    for url, worker in scraper.workers.items():
        out.add("subsidy_console_worker_up", "gauge", "1 if the worker's /metrics answered at the console's last scrape.", 1 if worker.up else 0, {"worker": worker_label(url)})
    for url, family in scraper.families():
        if family.name in CONSOLE_FAMILIES:
            # the console's figure is the ledger's; the worker's own (e.g. its counter of
            # subsidy_granted_fen_total{clause}) is kept under subsidy_worker_*
            family = renamed(family, worker_family_name(family.name))
        out.merge(family, {"worker": worker_label(url)})
    return out.render()
