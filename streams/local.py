"""A whole pipeline on one machine: local broker, topics, N worker processes, a ledger.

Used by `subsidy up`/`subsidy demo` and the integration tests. Workers are subprocesses
(``python -m streams.tansu.worker``) so they can be killed with SIGKILL and restarted. Only
processes started here are ever signalled, each by its own pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streams.config import StreamConfig
from streams.loopback import die_with_parent
from streams.topics import TopicError, ensure_topics, inspect_topics, topic_specs

KAFKA_KINDS = ("tansu", "apache")
#: on Apache Kafka local workers are production workers (`subsidy worker`) with a short session,
#: so that a killed worker's partitions move on within seconds, not Faust's 60
APACHE_SESSION_TIMEOUT = 8.0


def start_broker(kind: str, workdir: Path):
    """A new local broker of ``kind`` ("tansu" or "apache"), its data and log under ``workdir``;
    the caller stops it (``.stop()``). Apache Kafka starts on an empty log directory."""
    if kind == "apache":
        from streams.apache_kafka import ApacheKafka

        shutil.rmtree(workdir / "kafka", ignore_errors=True)
        return ApacheKafka(workdir=workdir / "kafka").start()
    from streams.tansu.broker import LocalBroker

    return LocalBroker(log_path=workdir / "broker.log").start()


class WorkerDied(RuntimeError):
    """A local worker exited while it was expected to run."""


@dataclass
class WorkerProcess:
    index: int
    proc: subprocess.Popen
    log_path: Path
    web_port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


class LocalPipeline:
    """Start with ``start()`` (or as a context manager); ``stop()`` stops what it started."""

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str],  # logs, worker state, the default ledger: the caller's to keep or remove
        workers: int = 1,
        partitions: int = 4,
        ledger_url: str | None = None,
        app_id: str = "subsidy-pipeline",
        bootstrap: str | None = None,  # an existing broker; None: start one of the kind `kafka` says
        kafka: str = "tansu",  # "tansu" (embedded default) or "apache" (Apache Kafka, production's broker)
        policy_path: str | None = None,
        loglevel: str = "info",
    ):
        self.n_workers = workers
        self.partitions = partitions
        self.app_id = app_id
        if kafka not in KAFKA_KINDS:
            raise ValueError(f"kafka must be one of {', '.join(KAFKA_KINDS)}, not {kafka!r}")
        self.kafka = kafka
        self.policy_path = policy_path
        self.loglevel = loglevel
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ledger_url = ledger_url or f"sqlite:///{self.workdir / 'ledger.sqlite'}"
        self._external_bootstrap = bootstrap
        self.broker = None
        self.workers: list[WorkerProcess] = []
        self._counter = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if self._external_bootstrap:
            return self._external_bootstrap
        assert self.broker is not None, "not started"
        return self.broker.bootstrap

    def config(self) -> StreamConfig:
        return StreamConfig(
            broker=f"kafka://{self.bootstrap}", ledger_url=self.ledger_url, policy_path=self.policy_path,
            partitions=self.partitions, app_id=self.app_id,
            session_timeout=APACHE_SESSION_TIMEOUT if self.kafka == "apache" else None,
            # what runs here is loaded history (a generated year, files), often dated after today
            backfill=True,
        )

    def start(self) -> "LocalPipeline":
        if not self._external_bootstrap and self.broker is None:
            self.broker = start_broker(self.kafka, self.workdir)
            # The workers' RocksDB state belongs to changelogs this new broker does not have:
            # kept, a reused workdir would restore last run's caps and decisions as if this run
            # had made them (and Faust would seek to offsets that no longer exist).
            for stale in self.workdir.glob("worker-*-data"):
                shutil.rmtree(stale)
        # made before the workers start (tansu auto-creates a topic it is asked about, with 4
        # partitions) and before anyone publishes; tansu cannot describe topic settings, Apache
        # Kafka's are checked as a worker checks them, replicated as the cluster allows
        if self.kafka == "tansu":
            ensure_topics(self.bootstrap, topic_specs(self.app_id, self.partitions))
        else:
            refusal = inspect_topics(self.bootstrap, self.app_id, self.partitions, create_missing=True).refusal()
            if refusal:
                raise TopicError(refusal)
        from sinks.ledger import Ledger

        Ledger.open(self.ledger_url).close()  # schema once, before workers race to create it
        for _ in range(self.n_workers):
            self.start_worker()
        return self

    def start_worker(self, state_of: WorkerProcess | None = None) -> WorkerProcess:
        """A new worker process; with ``state_of`` (a stopped or killed worker) on that worker's
        data directory, as a supervisor restarts a worker on its state volume."""
        from streams.loopback import free_port

        if state_of is not None:
            assert not state_of.alive(), "two workers on one RocksDB directory"
            if state_of in self.workers:
                self.workers.remove(state_of)
            index = state_of.index
        else:
            index = self._counter
            self._counter += 1
        port = free_port()
        datadir = self.workdir / f"worker-{index}-data"
        env = dict(os.environ)
        env.update(self.config().with_(web_port=port, datadir=str(datadir)).to_env())
        env["SUBSIDY_LOGLEVEL"] = self.loglevel
        env["PYTHONUNBUFFERED"] = "1"
        log_path = self.workdir / f"worker-{index}.log"
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker" if self.kafka == "apache" else "streams.tansu.worker"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(self.workdir), start_new_session=True, preexec_fn=die_with_parent,
            )
        finally:
            log.close()
        worker = WorkerProcess(index, proc, log_path, port)
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: WorkerProcess, sig: int = signal.SIGKILL) -> None:
        if worker.alive():
            os.kill(worker.pid, sig)
        try:
            worker.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(worker.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
        if worker in self.workers:
            self.workers.remove(worker)

    def stop_worker(self, worker: WorkerProcess, timeout: float = 20.0) -> None:
        if worker.alive():
            worker.proc.terminate()
            try:
                worker.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(timeout=10)
        if worker in self.workers:
            self.workers.remove(worker)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every worker's web server answers /metrics (it started), at most ``timeout``
        seconds; raises ``WorkerDied`` with its log tail if one exits meanwhile."""
        import urllib.request

        deadline = time.monotonic() + timeout
        pending = list(self.workers)
        while pending and time.monotonic() < deadline:
            for worker in list(pending):
                if not worker.alive():
                    raise WorkerDied(f"worker {worker.index} exited with {worker.proc.returncode}; log {worker.log_path}:\n{self.log_tail(worker)}")
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=1).read()
                    pending.remove(worker)
                except OSError:
                    pass
            time.sleep(0.3)

    def dead_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if not w.alive()]

    def restart_halted(self) -> list[str]:
        """Restart, on its state, every worker that stopped itself without acknowledging its
        batch (``STAGE_FAILED_EXIT``: a stage failed, or the consumer skipped records), as the
        production restart policy does (docker-compose.yml); the restarted worker reads the
        batch again. A worker the ledger refused (``LEDGER_REFUSED_EXIT``) stays down: that
        needs a person. Returns a line per restart, with the stopped worker's last log line."""
        from streams.checkpoint import STAGE_FAILED_EXIT

        restarted = []
        for worker in self.dead_workers():
            if worker.proc.returncode == STAGE_FAILED_EXIT:
                fresh = self.start_worker(state_of=worker)
                restarted.append(f"worker {worker.index} (pid {worker.pid}) stopped itself ({worker.proc.returncode}); "
                                 f"restarted on its state as pid {fresh.pid}; log {worker.log_path}: {self.log_tail(worker, 1)}")
        return restarted

    def stop(self) -> None:
        for worker in list(self.workers):
            if worker.alive():
                worker.proc.terminate()
        for worker in list(self.workers):
            self.stop_worker(worker)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> "LocalPipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, worker: WorkerProcess, lines: int = 40) -> str:
        try:
            return "\n".join(worker.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"
