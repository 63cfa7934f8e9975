"""Scrape the stream workers' Prometheus ``/metrics`` and turn them into per-topic throughput and lag.

The console does not depend on exact metric names from ``streams/metrics.py``. It reads every
family that has a ``topic`` label:

* a name containing ``lag`` is consumer lag (summed over partitions and workers);
* a counter whose name reads as input (``..._in_...``, ``consumed``, ``received``, ``read``) is
  events in; one that reads as output (``_out``, ``sent``, ``produced``, ``written``) is events
  out. Rates are the difference between the last two scrapes.

Scrapes run in the background every ``interval`` seconds while the app runs.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from console.promtext import Family, PromParseError, parse

_IN = re.compile(r"(^|_)(in|input|consumed|received|read|events_in)(_|$)")
_OUT = re.compile(r"(^|_)(out|output|sent|produced|written|emitted)(_|$)")


@dataclass(slots=True)
class WorkerScrape:
    url: str
    up: bool = False
    error: str | None = None
    scraped_at: float | None = None  # time.time()
    families: dict[str, Family] = field(default_factory=dict)
    previous: dict[str, Family] = field(default_factory=dict)
    previous_at: float | None = None


def classify(name: str, type_: str) -> str | None:
    lowered = name.lower()
    if "lag" in lowered:
        return "lag"
    counterish = type_ == "counter" or lowered.endswith("_total")
    if not counterish or "error" in lowered or "reject" in lowered:
        return None
    if _OUT.search(lowered.removesuffix("_total")):
        return "out"
    if _IN.search(lowered.removesuffix("_total")):
        return "in"
    return None


def _by_topic(families: dict[str, Family], kind: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in families.values():
        if classify(family.name, family.type) != kind:
            continue
        for sample in family.samples:
            topic = sample.labels.get("topic")
            if topic is None or sample.name.endswith("_created"):
                continue
            out[topic] = out.get(topic, 0.0) + sample.value
    return out


class StreamScraper:
    def __init__(self, urls: list[str], interval: float = 5.0, timeout: float = 3.0):
        self.urls = list(urls)
        self.interval = interval
        self.timeout = timeout
        self.workers = {url: WorkerScrape(url) for url in self.urls}
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.urls:
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        await self.scrape_once()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.scrape_once()

    async def scrape_once(self) -> None:
        await asyncio.gather(*(self._scrape(w) for w in self.workers.values()))

    async def _scrape(self, worker: WorkerScrape) -> None:
        assert self._session is not None
        try:
            async with self._session.get(worker.url, headers={"Accept": "text/plain"}) as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                text = await response.text()
            families = parse(text)
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, PromParseError, UnicodeDecodeError) as error:
            worker.up = False
            worker.error = f"{error.__class__.__name__}: {error}" if str(error) else error.__class__.__name__
            return
        if worker.scraped_at is not None and worker.up:
            worker.previous, worker.previous_at = worker.families, worker.scraped_at
        worker.families, worker.scraped_at, worker.up, worker.error = families, time.time(), True, None

    def report(self) -> dict[str, Any]:
        if not self.urls:
            return {
                "configured": False,
                "explanation": "No stream worker metrics are configured. Start the console with --worker-metrics http://HOST:PORT/metrics (once per worker) to see per-topic throughput and consumer lag.",
                "workers": [],
                "topics": [],
            }
        topics: dict[str, dict[str, Any]] = {}

        def slot(topic: str) -> dict[str, Any]:
            return topics.setdefault(topic, {"topic": topic, "events_in_total": 0.0, "events_in_per_second": None, "events_out_total": 0.0, "events_out_per_second": None, "lag": None})

        for worker in self.workers.values():
            if not worker.up:
                continue
            for kind in ("in", "out"):
                now = _by_topic(worker.families, kind)
                before = _by_topic(worker.previous, kind) if worker.previous_at else {}
                elapsed = (worker.scraped_at or 0) - (worker.previous_at or 0)
                for topic, value in now.items():
                    entry = slot(topic)
                    entry[f"events_{kind}_total"] += value
                    if worker.previous_at and elapsed > 0 and topic in before:
                        rate = max(0.0, (value - before[topic]) / elapsed)  # a restart resets counters
                        entry[f"events_{kind}_per_second"] = (entry[f"events_{kind}_per_second"] or 0.0) + rate
            for topic, value in _by_topic(worker.families, "lag").items():
                entry = slot(topic)
                entry["lag"] = (entry["lag"] or 0) + value
        workers = [
            {"url": w.url, "up": w.up, "error": w.error, "scraped_at": w.scraped_at, "families": len(w.families)}
            for w in self.workers.values()
        ]
        explanation = None
        if not any(w.up for w in self.workers.values()):
            explanation = "No configured worker answered its /metrics yet."
        elif not topics:
            explanation = "The workers answered, but none of their metrics has a `topic` label (expected e.g. events-in counters and consumer lag per topic)."
        return {
            "configured": True,
            "explanation": explanation,
            "interval_seconds": self.interval,
            "workers": workers,
            "topics": [topics[t] for t in sorted(topics)],
        }

    def families(self) -> list[tuple[str, Family]]:
        """(worker url, family) of the latest successful scrape of each worker."""
        return [(w.url, f) for w in self.workers.values() if w.up for f in w.families.values()]
