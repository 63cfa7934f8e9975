"""A worker for the local broker (tansu): ``python -m streams.tansu.worker``.

Local runs (`subsidy up`, `subsidy demo`) and tests only. Same app as production plus the
Faust settings proven for tansu (streams/tansu/broker.py, streams/tansu/README.md); topics
are created by whoever started the broker.
"""

from __future__ import annotations

import logging
import os
import sys

from streams.config import StreamConfig
from streams.tansu import fetch_wait, offsets
from streams.tansu.broker import local_broker_faust_settings
from streams.worker import run_worker


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    base = StreamConfig.from_env()
    settings = local_broker_faust_settings(web_port=base.web_port)
    settings["topic_partitions"] = base.partitions
    # The restore fix for tansu's short end offsets is done by fetching the true ends
    # (streams/tansu/offsets.py) instead of one-record producer batches, which cost most of
    # the throughput (five produced messages per input; see bench/README.md).
    offsets.install()
    fetch_wait.install()
    settings.pop("producer_max_batch_size", None)
    config = base.with_(extra_faust_settings=settings)
    # tansu keeps no topic settings to check; streams/local.py made the topics with theirs
    run_worker(config, loglevel=os.environ.get("SUBSIDY_LOGLEVEL", "info"), create_topics=False, check_topics=False)


if __name__ == "__main__":
    sys.exit(main())
