"""Tiny Faust app for tests/integration/test_local_broker.py.

Counts events per key from `counter-events` into the changelogged table
`counts`, and every 0.1 s writes a JSON status file the test can read:
    {"recovered": bool, "counts": {key: n}, "total": n, "pid": ...}

Run (from any directory):
    COUNTER_BOOTSTRAP=127.0.0.1:PORT COUNTER_STATUS=/tmp/s.json COUNTER_DATADIR=/tmp/counter \
        python tests/integration/faust_counter_app.py worker --without-web

Env:
    COUNTER_BOOTSTRAP  broker host:port (required)
    COUNTER_STATUS     path of the status file (required)
    COUNTER_DATADIR    Faust's data directory (required; the test's own, so it is removed with it)
    COUNTER_APP_ID     Faust app id / consumer group (default counter-app)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import faust  # noqa: E402

from streams.tansu.broker import local_broker_faust_settings  # noqa: E402

TOPIC = "counter-events"
PARTITIONS = 4

settings = local_broker_faust_settings()

app = faust.App(
    os.environ.get("COUNTER_APP_ID", "counter-app"),
    broker=f"kafka://{os.environ['COUNTER_BOOTSTRAP']}",
    store="memory://",
    datadir=os.environ["COUNTER_DATADIR"],
    **settings,
)
events = app.topic(TOPIC, key_type=str, value_type=str, partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)
STATUS = Path(os.environ["COUNTER_STATUS"])


@app.agent(events)
async def count(stream):
    async for key, _value in stream.items():
        counts[key] += 1


@app.timer(interval=0.1)
async def write_status():
    recovered = app.tables.recovery.completed.is_set()
    data = {k: v for k, v in counts.items()} if recovered else {}
    status = {
        "pid": os.getpid(),
        "recovered": recovered,
        "counts": data,
        "total": sum(data.values()),
    }
    tmp = STATUS.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(STATUS)


if __name__ == "__main__":
    app.main()
