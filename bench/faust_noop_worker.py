"""Baseline 2 of bench/bench_pipeline.py: a Faust worker whose agent does nothing.

Same broker, same input topics and the same local Faust settings as our workers
(streams/local_worker.py: ``local_broker_faust_settings``, the short fetch wait of
streams/tansu_fetch_wait.py, earliest reset; a memory store, since it keeps no table).
The agent only counts; when it has seen ``BENCH_TARGET`` events it writes
``{"first": t, "last": t, "count": n}`` (wall clock) to ``BENCH_OUT`` and keeps idling.

Run: ``BENCH_BROKER=127.0.0.1:PORT BENCH_TARGET=N BENCH_OUT=f.json python -m bench.faust_noop_worker``
(``BENCH_MODE=take`` iterates ``stream.take_events(1000, 0.5)`` instead of ``stream.events()``).
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
from streams import tansu_fetch_wait  # noqa: E402
from streams.local_broker import local_broker_faust_settings  # noqa: E402


def build() -> faust.App:
    tansu_fetch_wait.install()
    settings = local_broker_faust_settings()
    settings.update({"store": "memory://", "topic_disable_leader": True, "consumer_auto_offset_reset": "earliest",
                     "datadir": os.environ.get("BENCH_DATADIR", "/tmp/bench-noop-data")})
    app = faust.App(os.environ.get("BENCH_APP_ID", "bench-noop"), broker=f"kafka://{os.environ['BENCH_BROKER']}", **settings)
    inputs = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    target = int(os.environ["BENCH_TARGET"])
    out = os.environ["BENCH_OUT"]
    state = {"n": 0, "first": None}

    def seen(k: int) -> None:
        if state["first"] is None:
            state["first"] = time.time()
        state["n"] += k
        if state["n"] >= target and not os.path.exists(out):
            Path(out).write_text(json.dumps({"first": state["first"], "last": time.time(), "count": state["n"]}))

    if os.environ.get("BENCH_MODE") == "take":
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
