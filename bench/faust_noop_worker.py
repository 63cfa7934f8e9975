"""Baselines (b), (b2) and (b3) of bench/bench_pipeline.py: Faust workers that do none of our work.

Same broker, same input topics and the same Faust settings as our workers on that broker
(``BENCH_KAFKA``). On tansu (default), as streams/tansu/worker.py: ``local_broker_faust_settings``
with true end offsets instead of one-record producer batches and the short fetch wait of
streams/tansu/fetch_wait.py. On Apache Kafka (``BENCH_KAFKA=apache``), as a production worker
(streams/app.py) that streams/local.py starts there: no tansu shim, Faust's own fetch settings,
the local pipeline's 8 s session. Both: our 5 ms producer linger and 256 KiB record batches,
earliest reset, a web server on a free loopback port; a memory store. On Apache Kafka, which
creates no topic it is asked about, the topology modes' topics must exist (bench_pipeline.py
creates them); Faust creates the table's changelog itself.
The agent only counts; when it has seen ``BENCH_TARGET`` events it writes
``{"first": t, "last": t, "count": n, "cpu": s}`` to ``BENCH_OUT`` (wall clock; the CPU seconds
the whole process spent in between, every thread) and keeps idling.

Run: ``BENCH_BROKER=127.0.0.1:PORT BENCH_TARGET=N BENCH_OUT=f.json [BENCH_KAFKA=apache] python -m bench.faust_noop_worker``
(``BENCH_MODE=take`` iterates ``stream.take_events(1000, 0.5)`` instead of ``stream.events()``).

``BENCH_MODE=topology`` is baseline 2b: our pipeline's Faust traffic with none of its work. Two
agents with our stage batching (``take_events(500, 0.05)``): the first forwards each input's
bytes to a claims topic; the second, for each claim, writes one key of a table (one changelog
record) and forwards the bytes to a decisions and an instructions topic. No decoding, no rules,
no database. It counts the claims the second agent has seen, from the first input read.
``BENCH_MODE=topology-batched`` is the same with every output of a stage batch (changelog
records included) handed to aiokafka as record batches per partition and its delivery awaited
(streams/stage_outputs.py, as our stages send since 2026-12-02) instead of Faust's ``send_soon``
per message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faust  # noqa: E402
from faust.worker import Worker  # noqa: E402

from schemas.inputs import INPUT_TOPICS  # noqa: E402
from streams.app import PRODUCER_MAX_BATCH_BYTES  # noqa: E402
from streams.local import APACHE_SESSION_TIMEOUT  # noqa: E402
from streams.loopback import free_port  # noqa: E402
from streams.stage_outputs import StageOutputs  # noqa: E402
from streams.tansu import fetch_wait, offsets  # noqa: E402
from streams.tansu.broker import local_broker_faust_settings  # noqa: E402


async def send_each(app: faust.App, outputs: list) -> None:
    """Every output through Faust's producer buffer, one message at a time (as our stages send)."""
    for topic, partition, key, value in outputs:
        topic.send_soon(key=key, value=value, partition=partition)


async def send_batched(app: faust.App, outputs: list) -> None:
    """Every output handed to aiokafka as record batches per partition, delivery awaited: our
    stages' send path (streams/stage_outputs.py)."""
    batch = StageOutputs()
    for topic, partition, key, value in outputs:
        batch.put(topic.get_topic_name(), key, value, partition)
    await batch.deliver(app.producer._ensure_producer())


def faust_settings(kafka: str) -> dict:
    """The Faust settings our workers run with on ``kafka`` ("tansu" or "apache"), less our app's
    own (store, topics); installs the tansu shims on tansu only."""
    if kafka == "tansu":
        fetch_wait.install()
        settings = local_broker_faust_settings()
        # as streams/tansu/worker.py: true end offsets fetched, so producer batches are not cut to
        # one record
        offsets.install()
    elif kafka == "apache":
        # as streams/app.py's build_app with streams/local.py's config for Apache Kafka
        settings = {"broker_session_timeout": APACHE_SESSION_TIMEOUT, "broker_heartbeat_interval": min(3.0, APACHE_SESSION_TIMEOUT / 4),
                    "topic_partitions": 4, "web_bind": "127.0.0.1", "web_host": "127.0.0.1", "web_port": free_port()}
    else:
        raise ValueError(f"BENCH_KAFKA is tansu or apache, not {kafka!r}")
    # our app's linger and record-batch size (streams/app.py)
    settings["producer_linger"] = 0.005
    settings["producer_max_batch_size"] = PRODUCER_MAX_BATCH_BYTES
    settings.update({"store": "memory://", "topic_disable_leader": True, "consumer_auto_offset_reset": "earliest"})
    return settings


def build() -> faust.App:
    settings = faust_settings(os.environ.get("BENCH_KAFKA", "tansu"))
    settings["datadir"] = os.environ.get("BENCH_DATADIR", "/tmp/bench-noop-data")
    app = faust.App(os.environ.get("BENCH_APP_ID", "bench-noop"), broker=f"kafka://{os.environ['BENCH_BROKER']}", **settings)
    inputs = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    target = int(os.environ["BENCH_TARGET"])
    out = os.environ["BENCH_OUT"]
    state = {"n": 0, "first": None, "cpu_first": None}

    def started() -> None:
        if state["first"] is None:
            state["first"], state["cpu_first"] = time.time(), time.process_time()

    def seen(k: int) -> None:
        started()
        state["n"] += k
        if state["n"] >= target and not os.path.exists(out):
            Path(out).write_text(json.dumps({"first": state["first"], "last": time.time(), "count": state["n"],
                                             "cpu": time.process_time() - state["cpu_first"]}))

    mode = os.environ.get("BENCH_MODE")
    if mode in ("topology", "topology-batched"):
        claims = app.topic("bench-claims", key_serializer="raw", value_serializer="raw", partitions=4)
        table = app.Table("bench-state", default=None, partitions=4, schema=faust.Schema(key_serializer="raw", value_serializer="raw"))
        decisions = app.topic("bench-decisions", key_serializer="raw", value_serializer="raw")
        instructions = app.topic("bench-instructions", key_serializer="raw", value_serializer="raw")
        send = send_each if mode == "topology" else send_batched

        @app.agent(inputs, name="intake")
        async def forward(stream):
            async for events in stream.take_events(500, within=0.05):
                started()
                await send(app, [(claims, None, event.message.key or b"-", event.value) for event in events])

        @app.agent(claims, name="decide")
        async def decide(stream):
            async for events in stream.take_events(500, within=0.05):
                outputs = []
                for event in events:
                    key, partition = event.message.key, event.message.partition
                    # as our table does (streams/state.py): take_events sets no current event,
                    # so the store and changelog partition are named, not looked up
                    table.data[key] = b"1"
                    outputs += [(table.changelog_topic, partition, key, b"1"), (decisions, None, key, event.value), (instructions, None, key, event.value)]
                await send(app, outputs)
                seen(len(events))
    elif mode == "take":
        @app.agent(inputs, name="noop")
        async def noop_take(stream):
            async for events in stream.take_events(1000, within=0.5):
                seen(len(events))
    else:
        @app.agent(inputs, name="noop")
        async def noop(stream):
            async for _event in stream.events():
                seen(1)

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(build(), loglevel="warning", logfile=None, quiet=True)
    worker.spinner = None  # as our workers (streams/worker.py): no DEBUG root logger
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
