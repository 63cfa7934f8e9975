"""A worker for the local broker (tansu): ``python -m streams.local_worker``.

Local runs (`subsidy up`, `subsidy demo`) and tests only. Same app as production plus the
Faust settings proven for tansu (streams/local_broker.py, streams/LOCAL_BROKER.md); topics
are created by whoever started the broker.
"""

from __future__ import annotations

import logging
import os
import sys

from streams.config import StreamConfig
from streams.local_broker import local_broker_faust_settings
from streams.worker import run_worker


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    base = StreamConfig.from_env()
    settings = local_broker_faust_settings(web_port=base.web_port)
    settings["topic_partitions"] = base.partitions
    config = base.with_(extra_faust_settings=settings)
    run_worker(config, loglevel=os.environ.get("SUBSIDY_LOGLEVEL", "info"), create_topics=False)


if __name__ == "__main__":
    sys.exit(main())
