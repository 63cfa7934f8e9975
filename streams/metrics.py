"""Counters of one worker process, served as Prometheus text at ``/metrics``.

Deliberately tiny (no client library): counters with labels and one histogram. Every worker
serves its own numbers; a scraper sums them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _esc(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *label_values: str, by: float = 1) -> None:
        self.values[tuple(str(v) for v in label_values)] += by

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(self.values.items()):
            labels = ",".join(f'{n}="{_esc(v)}"' for n, v in zip(self.labels, key))
            yield f"{self.name}{{{labels}}} {value:g}" if labels else f"{self.name} {value:g}"


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.name, self.help, self.buckets = name, help, buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for bound, count in zip(self.buckets, self.counts):
            yield f'{self.name}_bucket{{le="{bound:g}"}} {count}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.total}'
        yield f"{self.name}_sum {self.sum:.6f}"
        yield f"{self.name}_count {self.total}"


def render_gauge(name: str, help: str, labels: tuple[str, ...], samples: Iterable[tuple[tuple[str, ...], float]]) -> str:
    """A gauge read at scrape time (nothing to keep between scrapes)."""
    lines = [f"# HELP {name} {help}", f"# TYPE {name} gauge"]
    for key, value in samples:
        rendered = ",".join(f'{n}="{_esc(v)}"' for n, v in zip(labels, key))
        lines.append(f"{name}{{{rendered}}} {value:g}")
    return "\n".join(lines) + "\n"


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events_in = Counter("subsidy_events_in_total", "input messages read, by topic", ("topic",))
        self.claims = Counter("subsidy_claims_total", "claims sent to the decide agent, by clause", ("clause",))
        self.decisions = Counter("subsidy_decisions_total", "decisions emitted, by outcome (repeats of a duplicate included)", ("outcome",))
        self.duplicates = Counter("subsidy_duplicates_total", "claims that were already decided (decision re-emitted)")
        self.rejections = Counter("subsidy_rejections_total", "rejections emitted, by reason code", ("code",))
        self.granted = Counter("subsidy_granted_fen_total", "net fen in instructions written to the ledger, by clause", ("clause",))
        self.ledger_batches = Counter("subsidy_ledger_batches_total", "ledger transactions committed")
        self.ledger_new = Counter("subsidy_ledger_records_new_total", "records the ledger stored for the first time, by kind", ("kind",))
        self.ledger_present = Counter("subsidy_ledger_records_present_total", "records the ledger already had (redeliveries), by kind", ("kind",))
        self.rereads = Counter("subsidy_partition_rereads_total", "stalled partitions sought back to their committed offset (streams/stall_watch.py), by topic", ("topic",))
        self.dropped = Counter("subsidy_dropped_records_total", "records of the stages' topics (inputs and claims) Faust dropped unread during a rebalance and tried to acknowledge; refused, they are read again (streams/faust_runtime/skip_fix.py), by topic", ("topic",))
        self.input_gaps = Counter("subsidy_input_gap_offsets_total", "offsets of input topics Faust skipped that the broker showed to hold no record (transaction markers, compacted records), committed past; a skipped offset holding a record stops the worker instead (streams/faust_runtime/skip_fix.py); by topic", ("topic",))
        self.dead_letters = Counter("subsidy_dead_letters_total", "records of our own topics that could not be read, skipped and written to subsidy-dead-letters (streams/own_records.py), by the topic they were on", ("topic",))
        self.reclaims = Counter("subsidy_memory_reclaims_total", "timed full collections, each followed by malloc_trim (subsidy/runtime.py)")
        self.reclaim_seconds = Counter("subsidy_memory_reclaim_seconds_total", "time the event loop spent in them")
        self.latency = Histogram("subsidy_end_to_end_seconds", "from the input's broker timestamp to its effects committed in the ledger")

    def render(self) -> str:
        with self.lock:
            parts = [self.events_in, self.claims, self.decisions, self.duplicates, self.rejections, self.granted,
                     self.ledger_batches, self.ledger_new, self.ledger_present, self.rereads, self.dropped, self.input_gaps, self.dead_letters,
                     self.reclaims, self.reclaim_seconds, self.latency]
            return "\n".join(line for part in parts for line in part.render()) + "\n"


METRICS = Metrics()
