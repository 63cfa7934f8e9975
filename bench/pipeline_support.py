"""Helpers of the pipeline benchmarks (bench_pipeline, bench_latency, soak): worker metrics,
process memory, topic resets, the event file and its replay."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from schemas.inputs import INPUT_TOPICS


def worker_metric(port: int, name: str) -> float | None:
    """Sum of a counter over its labels on one worker's /metrics (None: not answering)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process in KiB; (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) a live process has used; 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # fields after the parenthesised command name, which may itself hold spaces
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delete_non_input_topics(bootstrap: str, keep: tuple[str, ...] = INPUT_TOPICS) -> list[str]:
    """Delete every topic but the inputs (so a second pipeline run starts from empty internal topics)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-reset")
    try:
        doomed = [t for t in admin.list_topics() if t not in keep and not t.startswith("__")]
        if doomed:
            admin.delete_topics(doomed)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and set(doomed) & set(admin.list_topics()):
            time.sleep(0.2)
    finally:
        admin.close()
    return doomed


def generated_events(path: Path, events: int, seed: int, enterprises: int, year: int = 2026) -> int:
    from subsidy.generate import generate_file

    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    return generate_file(path, year, seed=seed, enterprises=enterprises, events=events)


def wait_file(path: str, timeout: float, proc=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False
