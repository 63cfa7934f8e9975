"""Faults during a pipeline run on Apache Kafka that fit in the test suite's time: the ledger's
PostgreSQL connections killed mid-batch (repeatedly), the ledger's PostgreSQL server crashed and
restarted mid-run, the broker killed with SIGKILL and restarted on its data mid-run; and the
embedded broker's (tansu's) short end offsets corrected.

The long faults (kill -9 of workers under a held load for minutes, memory flat) are
``make soak`` (bench/soak.py).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
import sqlalchemy as sa

from bench.private_postgres import NOT_INSTALLED, PrivatePostgres, find_bin_dir
from pipeline_support import alive_check, assert_ledger_equals_replay, wait_for_progress
from sinks.ledger import Ledger, make_engine
from streams.apache_kafka import ApacheKafka
from streams.checkpoint import LEDGER_REFUSED_EXIT
from streams.local import LocalPipeline
from streams.tansu.broker import LocalBroker
from streams.tools.publish import publish_file
from streams.tools.verify import accounted, expected_from_file, wait_until_accounted
from subsidy.generate import generate_file

pytestmark = pytest.mark.integration


def _terminate_sink_connections(admin, database: str) -> int:
    """pg_terminate_backend of the workers' ledger connections (by application_name) that are in
    the middle of a transaction: a kill of an idle pooled connection would only be noticed, and
    silently replaced, at the next checkout, and would prove nothing about a batch."""
    return len(admin.exec_driver_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(db)s AND application_name = 'subsidy-ledger' AND pid <> pg_backend_pid() "
        "AND state <> 'idle' AND xact_start IS NOT NULL",
        {"db": database},
    ).all())


def test_postgres_connections_killed_mid_batch(kafka_bootstrap, ledger_url, tmp_path):
    path = tmp_path / "events.jsonl"
    generate_file(path, 2026, seed=21, enterprises=200, events=6000)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    rng = random.Random(21)
    with LocalPipeline(workers=1, ledger_url=ledger_url, bootstrap=kafka_bootstrap, kafka="apache", workdir=tmp_path / "run",
                       app_id="subsidy-fault-pg") as p:
        assert publish_file(str(path), p.bootstrap) == expected.inputs
        # the ledger polled from here has another application_name, so the killer spares it
        with Ledger(make_engine(ledger_url, application_name="subsidy-test-poller")) as ledger:
            wait_for_progress(ledger, expected, int(total * 0.05), timeout=120)
            killed, rounds = 0, 0
            stop = threading.Event()

            def killer() -> None:
                nonlocal killed, rounds
                url = sa.make_url(ledger_url)
                engine = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
                try:
                    with engine.connect() as admin:
                        while not stop.is_set():
                            before = killed
                            killed += _terminate_sink_connections(admin, url.database)
                            rounds += 1
                            # poll fast (a batch's transaction lasts tens of ms), pause after a kill
                            stop.wait(rng.uniform(0.2, 0.6) if killed > before else 0.01)
                finally:
                    engine.dispose()

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            try:
                wait_for_progress(ledger, expected, int(total * 0.8), timeout=240, check=alive_check(p))
            finally:
                stop.set()
                thread.join()
            assert killed >= 3, f"only {killed} connections were killed mid-transaction in {rounds} rounds"
            assert wait_until_accounted(ledger, expected, timeout=180), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)
        assert not p.dead_workers()
        log = p.workers[0].log_path.read_text(errors="replace")
        assert "ledger unavailable" in log or "retry" in log.lower(), "the kills never hit a batch"
    print(f"\nkilled {killed} ledger connections in {rounds} rounds")


def test_postgres_server_crashed_and_restarted_mid_run(kafka_bootstrap, tmp_path):
    """The ledger's server goes away twice while batches are being booked: once as a crash
    (``pg_ctl stop -m immediate``: open transactions cut, crash recovery at the next start),
    once as an orderly restart. Workers wait for it and go on; the ledger equals the replay."""
    bin_dir = find_bin_dir()
    assert bin_dir is not None, NOT_INSTALLED
    path = tmp_path / "events.jsonl"
    generate_file(path, 2026, seed=23, enterprises=200, events=6000)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    server = PrivatePostgres(bin_dir).init()
    try:
        server.start()
        with LocalPipeline(workers=1, ledger_url=server.url, bootstrap=kafka_bootstrap, kafka="apache", workdir=tmp_path / "run",
                           app_id="subsidy-fault-pg-restart") as p:
            assert publish_file(str(path), p.bootstrap) == expected.inputs
            for mode, reached in (("immediate", 0.1), ("fast", 0.5)):
                with Ledger.open(server.url) as ledger:
                    wait_for_progress(ledger, expected, int(total * reached), timeout=180, check=alive_check(p))
                server.stop(mode)
                time.sleep(2.0)  # workers meet a dead server for a while, not only a reconnect
                server.start()
            with Ledger.open(server.url) as ledger:
                assert wait_until_accounted(ledger, expected, timeout=180), accounted(ledger, expected)
                assert_ledger_equals_replay(ledger, expected)
            assert not p.dead_workers()
            log = p.workers[0].log_path.read_text(errors="replace")
            assert "ledger: attempt" in log or "ledger unavailable" in log, "no batch met the stopped server"
    finally:
        server.remove()


def _restart_the_dead(p: LocalPipeline, restarted: list[int]):
    """A wait's check that does what a supervisor (systemd, Kubernetes) does: start a worker
    that exited again, on its state. A worker the ledger stopped (a refused record) fails the
    test instead."""
    def check() -> None:
        for dead in p.dead_workers():
            log = p.log_tail(dead)
            assert dead.proc.returncode != LEDGER_REFUSED_EXIT, f"the ledger refused a record of worker {dead.index}:\n{log}"
            restarted.append(dead.proc.returncode)
            p.start_worker(state_of=dead)

    return check


def test_broker_killed_and_restarted_mid_run(ledger_url, tmp_path):
    """The broker (Apache Kafka, one node) killed with SIGKILL twice during a run of two workers and
    kept down for 8 s, longer than the workers' session timeout, so the group falls apart and forms
    again; it comes back on its log directory. Nothing is lost or booked twice: the ledger equals
    the replay to the fen."""
    path = tmp_path / "events.jsonl"
    generate_file(path, 2026, seed=25, enterprises=200, events=4000)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    restarted: list[int] = []
    with ApacheKafka(workdir=tmp_path / "kafka") as kafka, \
            LocalPipeline(workers=2, ledger_url=ledger_url, bootstrap=kafka.bootstrap, kafka="apache", workdir=tmp_path / "run",
                          app_id="subsidy-fault-broker") as p:
        assert publish_file(str(path), kafka.bootstrap) == expected.inputs
        check = _restart_the_dead(p, restarted)
        with Ledger.open(ledger_url) as ledger:
            for reached in (0.15, 0.4):
                done = wait_for_progress(ledger, expected, int(total * reached), timeout=180, check=check)
                assert done < total, "the run finished before the outage"
                kafka.kill(1)
                time.sleep(8.0)
                kafka.start_node(1)
            assert wait_until_accounted(ledger, expected, timeout=240, check=check), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)
    print(f"\nworkers that exited and were started again (exit codes): {restarted or 'none'}")


def test_true_end_offsets_on_the_local_broker(tmp_path):
    """tansu reports (base of the newest batch + 1) as the end; the local worker's correction
    (streams/tansu/offsets.py) must give the real end of batched partitions."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    from streams.tansu.broker import create_topics
    from streams.tansu.offsets import true_end_offsets

    async def run(bootstrap: str) -> tuple[dict, dict]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        await producer.start()
        try:
            for i in range(3000):
                await producer.send("end-offsets", b"x" * 100, partition=i % 3)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            reported = await consumer.end_offsets([TopicPartition("end-offsets", i) for i in range(3)])
        finally:
            await consumer.stop()
        return reported, await true_end_offsets(bootstrap, reported)

    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        create_topics(broker.bootstrap, {"end-offsets": 3})
        reported, true = asyncio.run(run(broker.bootstrap))
    assert all(v == 1000 for v in true.values()), (reported, true)
