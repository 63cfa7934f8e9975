"""Helpers of the pipeline benchmarks (bench_pipeline, bench_latency, soak): worker metrics,
process memory, topic resets, the event file and its replay."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from schemas.inputs import INPUT_TOPICS
from streams.apache_kafka import KAFKA_VERSION


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


# -- brokers ---------------------------------------------------------------------------------


#: what ``--kafka`` takes: one broker, ``both`` (tansu, then Apache Kafka), or a comma list in the
#: order to run them (``apache,tansu``, to see whether going second moves a figure)
KAFKA_CHOICES = ("tansu", "apache", "both")
KAFKA_HELP = ("broker(s) to measure on, back to back in one run, each with its own baselines: tansu (the embedded "
              "local broker, in memory), apache (Apache Kafka 4, production's broker, one node on a local disk), "
              "both (= tansu,apache; default), or a comma list giving the order")


def kafka_kinds(choice: str) -> tuple[str, ...]:
    """``--kafka`` → the brokers to run on, in order: ``both`` is ``("tansu", "apache")``; a
    comma list keeps its order; a broker named twice, or one not known, is an error."""
    from streams.local import KAFKA_KINDS

    names = [part.strip().lower() for part in choice.split(",")]
    kinds: list[str] = []
    for name in names:
        for kind in (KAFKA_KINDS if name == "both" else (name,)):
            if kind not in KAFKA_KINDS:
                raise ValueError(f"--kafka takes {', '.join(KAFKA_CHOICES)} or a comma list of {', '.join(KAFKA_KINDS)}, not {choice!r}")
            if kind in kinds:
                raise ValueError(f"--kafka names {kind} twice: {choice!r}")
            kinds.append(kind)
    return tuple(kinds)


def kafka_argument(choice: str) -> tuple[str, ...]:
    """``kafka_kinds`` as an argparse ``type`` (a bad value is a usage error, not a traceback)."""
    import argparse

    try:
        return kafka_kinds(choice)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


BROKER_NAMES = {"tansu": "tansu (local, in memory)", "apache": f"Apache Kafka {KAFKA_VERSION} (1 node, local disk)"}


class Broker:
    """A broker of one kind for one benchmark run: ``with Broker("apache", workdir) as b: b.bootstrap``.

    Started as the local pipeline starts it (streams/local.py ``start_broker``); Apache Kafka's
    topics must be created before use (``create_topics``)."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self._broker = None

    def __enter__(self) -> "Broker":
        from streams.local import start_broker

        self._broker = start_broker(self.kind, self.workdir)
        return self

    def __exit__(self, *exc) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    @property
    def bootstrap(self) -> str:
        assert self._broker is not None, "not started"
        return self._broker.bootstrap

    @property
    def name(self) -> str:
        return BROKER_NAMES[self.kind]

    def create_topics(self, app_id: str, partitions: int, extra: dict[str, int] | None = None) -> None:
        """The app's topics with their settings (streams/topics.py, as a production worker creates
        them; the inputs are among them), and ``extra`` {name: partitions} with the broker's defaults."""
        from streams.tansu.broker import create_topics
        from streams.topics import ensure_topics, topic_specs

        ensure_topics(self.bootstrap, topic_specs(app_id, partitions))
        if extra:
            create_topics(self.bootstrap, extra)


def group_settled(description: dict, members: int) -> bool:
    """Whether a consumer group's description (kafka-python's ``describe_groups`` entry) shows it
    Stable with ``members`` members, each assigned partitions."""
    if description.get("error") or description.get("group_state") != "Stable":
        return False
    found = description.get("members") or []
    assigned = [m for m in found if any(t.get("partitions") for t in ((m.get("member_assignment") or {}).get("assigned_partitions") or []))]
    return len(found) == members and len(assigned) == members


def wait_group_settled(bootstrap: str, group: str, members: int, timeout: float = 90.0) -> float | None:
    """Seconds until the consumer group ``group`` is Stable with ``members`` members holding
    partitions; None at once if the broker cannot describe groups (tansu), or at the timeout."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    started = time.monotonic()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-group-watch")
    try:
        while time.monotonic() - started < timeout:
            try:
                description = admin.describe_groups([group]).get(group) or {}
            except KafkaError:  # e.g. no coordinator for the group yet
                description = {}
            except Exception:  # noqa: BLE001 - an answer the client cannot read (tansu's): no answer
                return None
            if group_settled(description, members):
                return time.monotonic() - started
            time.sleep(0.2)
        return None
    finally:
        admin.close()
