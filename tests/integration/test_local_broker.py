"""The local tansu broker and the Faust settings that make Faust correct on it.

The restore test is the proof for local_broker_faust_settings(): tansu answers
ListOffsets LATEST with (base offset of the newest batch + 1), so without the
batches-of-one producer setting Faust restores changelogged tables short
(measured: 998 of 1000; the shortfall depends on how the producer batches, so it is not a test:
streams/tansu/README.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.tansu.broker import (
    LocalBroker,
    LocalBrokerError,
    create_topics,
    find_tansu,
    local_broker_faust_settings,
)

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("faust_counter_app.py")
APP_ID = "counter-app"
SOURCE = "counter-events"
CHANGELOG = f"{APP_ID}-counts-changelog"
PARTITIONS = 4
N_EVENTS = 1000
N_KEYS = 10


@pytest.fixture
def broker():
    with LocalBroker() as b:
        yield b


# -- LocalBroker / create_topics ----------------------------------------------


def test_find_tansu_returns_executable():
    path = find_tansu()
    assert os.access(path, os.X_OK)


def test_create_topics_is_idempotent_and_checks_partitions(broker):
    create_topics(broker.bootstrap, {"a": 3, "b": 1})
    create_topics(broker.bootstrap, {"a": 3})  # exists, same count: fine
    with pytest.raises(LocalBrokerError, match="a: wanted 2 partitions, broker has 3"):
        create_topics(broker.bootstrap, {"a": 2})


def test_restart_keeps_port_and_loses_data(broker):
    from kafka import KafkaAdminClient

    create_topics(broker.bootstrap, {"before-restart": 2})
    bootstrap, old_pid = broker.bootstrap, broker.pid
    broker.restart()
    assert broker.bootstrap == bootstrap and broker.pid != old_pid
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert "before-restart" not in admin.list_topics()  # memory:// storage
    finally:
        admin.close()


def test_start_failure_reports_log_tail(tmp_path):
    b = LocalBroker(storage_engine="sqlite://nope.db", log_path=tmp_path / "t.log")
    with pytest.raises(LocalBrokerError, match="(?s)exited with code .*FeatureNotEnabled"):
        b.start()
    assert not b.is_running()


def test_settings_shape():
    s = local_broker_faust_settings()
    assert s["broker_session_timeout"] == 6.0
    assert s["broker_heartbeat_interval"] < s["broker_session_timeout"] / 3
    assert s["producer_max_batch_size"] == 1
    assert s["web_bind"] == "127.0.0.1"


def test_a_new_local_broker_clears_the_workers_state_of_a_reused_workdir(tmp_path):
    """A fresh in-memory broker has none of the changelogs a previous run's RocksDB state came
    from: kept, that state would make this run's claims look already decided."""
    from streams.local import LocalPipeline

    stale = tmp_path / "worker-0-data" / "v1" / "tables" / "subsidy-state-0.db"
    stale.mkdir(parents=True)
    with LocalPipeline(workers=0, workdir=tmp_path):
        assert not (tmp_path / "worker-0-data").exists()


# -- Faust table restore after kill -9 -----------------------------------------


class Worker:
    """One `faust worker` subprocess running faust_counter_app.py."""

    def __init__(self, bootstrap: str, workdir: Path, name: str):
        self.status = workdir / f"status-{name}.json"
        self.log = workdir / f"worker-{name}.log"
        env = dict(
            os.environ,
            COUNTER_BOOTSTRAP=bootstrap,
            COUNTER_STATUS=str(self.status),
            COUNTER_DATADIR=str(workdir / f"data-{name}"),
            COUNTER_APP_ID=APP_ID,
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "worker", "-l", "info"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def read(self) -> dict | None:
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return None

    def wait_for(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}) "
                                     f"waiting for {what}:\n{self.tail()}")
            s = self.read()
            if s is not None and s["recovered"] and pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status "
                             f"{self.read()}\n{self.tail()}")

    def tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # only the process we started
        self.proc.wait(10)


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for w in started:
        w.kill9()


def _produce_events(bootstrap: str) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        for i in range(N_EVENTS):
            p.send(SOURCE, key=f"k{i % N_KEYS}".encode(), value=str(i).encode())
        p.flush(10)
    finally:
        p.close()


def _committed(bootstrap: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(APP_ID).get(APP_ID, {})
        return sum(om.offset for tp, om in offsets.items() if tp.topic == SOURCE)
    finally:
        admin.close()


def _count_kill_restore(broker: LocalBroker, workers: list, tmp_path: Path) -> dict:
    create_topics(broker.bootstrap, {SOURCE: PARTITIONS, CHANGELOG: PARTITIONS})
    _produce_events(broker.bootstrap)

    first = Worker(broker.bootstrap, tmp_path, "first")
    workers.append(first)
    first.wait_for(lambda s: s["total"] >= N_EVENTS, 30, "all events counted")
    # Kill only once the source offsets are committed (commit_interval 2.8 s),
    # so the restarted worker reprocesses nothing and its table is the restore.
    deadline = time.monotonic() + 15
    while _committed(broker.bootstrap) < N_EVENTS:
        assert time.monotonic() < deadline, "offsets never committed"
        time.sleep(0.2)
    first.kill9()

    second = Worker(broker.bootstrap, tmp_path, "second")
    workers.append(second)
    restored = second.wait_for(lambda s: True, 40, "recovery after kill -9")
    assert _committed(broker.bootstrap) == N_EVENTS  # commits survive kill -9
    return restored


def test_faust_table_restores_exactly_after_kill9(broker, workers, tmp_path):
    restored = _count_kill_restore(broker, workers, tmp_path)
    assert restored["total"] == N_EVENTS, restored
    assert restored["counts"] == {f"k{i}": N_EVENTS // N_KEYS for i in range(N_KEYS)}


def test_a_worker_that_stopped_itself_is_restarted_on_its_state_and_a_refused_one_is_not(tmp_path, monkeypatch):
    from streams.checkpoint import LEDGER_REFUSED_EXIT, STAGE_FAILED_EXIT
    from streams.local import LocalPipeline, WorkerProcess

    p = LocalPipeline(workdir=tmp_path)
    started = []
    monkeypatch.setattr(p, "start_worker", lambda state_of=None: started.append(state_of) or SimpleNamespace(pid=4242))

    def exited(index: int, code: int) -> WorkerProcess:
        proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        proc.wait(timeout=30)
        return WorkerProcess(index, proc, tmp_path / f"worker-{index}.log", 0)

    halted, refused = exited(0, STAGE_FAILED_EXIT), exited(1, LEDGER_REFUSED_EXIT)
    halted.log_path.write_text("...\nsubsidy-claims[2]: the consumer skipped records @7843..@7843\n")
    p.workers = [halted, refused]
    (line,) = p.restart_halted()
    assert started == [halted]
    assert f"worker 0 (pid {halted.pid}) stopped itself ({STAGE_FAILED_EXIT})" in line and "as pid 4242" in line
    assert line.endswith("skipped records @7843..@7843")
