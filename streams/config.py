"""Configuration of the streaming pipeline, from the environment (and flags that override it).

Nothing here knows about the local broker: `extra_faust_settings` is how local-run entry
points and tests pass the tansu workarounds (streams/tansu/broker.py); the production
`subsidy worker` path never sets it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

DEFAULT_APP_ID = "subsidy-pipeline"
DEFAULT_PARTITIONS = 4
STATE_STORES = ("rocksdb", "memory")


def _broker_url(value: str) -> str:
    """`host:port`, `kafka://host:port` or a comma list of either -> Faust's `kafka://` form."""
    value = value.strip()
    if "://" in value:
        return value
    return ";".join(f"kafka://{part.strip()}" for part in value.split(",") if part.strip())


def bootstrap_of(broker: str) -> str:
    """`kafka://h:p;kafka://h2:p2` -> `h:p,h2:p2` (for kafka-python clients)."""
    parts = [p.strip() for p in broker.replace(",", ";").split(";") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


def _whole_number(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("must be a whole number")
    return int(text)


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("must be 1 (yes) or 0 (no)")
    return text == "1"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not value > 0:
        raise ValueError("must be more than 0 seconds")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of minutes") from None
    if not value > 0:
        raise ValueError("must be more than 0 minutes")
    return value


@dataclass(frozen=True)
class StreamConfig:
    broker: str = "kafka://127.0.0.1:9092"
    ledger_url: str | None = None  # None: sinks.ledger.DEFAULT_LEDGER_URL
    policy_path: str | None = None  # None: the shipped policy; files separated by os.pathsep run together
    partitions: int = DEFAULT_PARTITIONS
    # replicas of each topic the app creates; None: 3 where the cluster has 3 brokers or more, else 1
    # (streams/topics.py, which also sets min.insync.replicas from it)
    replication: int | None = None
    app_id: str = DEFAULT_APP_ID
    datadir: str | None = None  # Faust's data directory (None: Faust's default, ./<app_id>-data)
    web_port: int | None = None
    # where the engine's running state lives: "rocksdb" (on disk under datadir, memory flat
    # however many claims were decided) or "memory" (rebuilt from the changelog at each start)
    state_store: str = "rocksdb"
    web_bind: str = "127.0.0.1"
    # intake and decide batches, one ledger transaction each: up to stage_batch events, or what
    # arrived within stage_within seconds (small, so the two stages do not add up to a visible
    # latency; under load the batches fill before the window ends)
    stage_batch: int = 500
    stage_within: float = 0.05
    # how long the group waits for a worker that stopped answering before giving its partitions to
    # the others (Kafka's session.timeout.ms); None: Faust's 60 s
    session_timeout: float | None = None
    # an input partition that intake has read to its end and that brought nothing for this long
    # counts as read up to now (streams/app.py report_input_progress): without it an input that
    # nobody publishes to would hold every claim back for ever
    idle_after: float = 5.0
    # what such an input counts as read up to: now (live traffic: a claim that then comes more than
    # its clause's allowed lateness after it happened is late), or, when the inputs hold history
    # being loaded (a generated year, a backfill: events dated up to the year's end), the end of time
    backfill: bool = False
    # the ledger's signed checkpoints (sinks/ledger/checkpoints.py): the private key's file (None:
    # no checkpoints), and how often the head is signed and published on ledger-checkpoints: every
    # so many chain entries or minutes, whichever comes first; what a deletion of the newest
    # entries can hide is bounded by them
    checkpoint_key: str | None = None
    checkpoint_every_entries: int = 10_000
    checkpoint_every_minutes: float = 5.0
    extra_faust_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return bootstrap_of(self.broker)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "StreamConfig":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for variable, (field_name, convert) in _ENVIRONMENT.items():
            if env.get(variable):
                try:
                    values[field_name] = convert(env[variable])
                except ValueError as exc:
                    raise ValueError(f"{variable}={env[variable]!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "broker" in overrides and overrides["broker"]:
            values["broker"] = _broker_url(overrides["broker"])
        config = cls(**values)
        if config.state_store not in STATE_STORES:
            raise ValueError(f"SUBSIDY_STATE_STORE must be one of {', '.join(STATE_STORES)}, got {config.state_store!r}")
        if config.partitions < 1:
            raise ValueError(f"SUBSIDY_PARTITIONS must be at least 1, got {config.partitions}")
        if config.replication is not None and config.replication < 1:
            raise ValueError(f"SUBSIDY_REPLICATION must be at least 1, got {config.replication}")
        return config

    def with_(self, **changes: Any) -> "StreamConfig":
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment a worker subprocess needs to rebuild this config (minus extra settings)."""
        env = {
            "SUBSIDY_BROKER": self.broker,
            "SUBSIDY_PARTITIONS": str(self.partitions),
            "SUBSIDY_APP_ID": self.app_id,
        }
        if self.ledger_url:
            env["SUBSIDY_LEDGER_URL"] = self.ledger_url
        if self.policy_path:
            env["SUBSIDY_POLICY"] = self.policy_path
        if self.datadir:
            env["SUBSIDY_DATADIR"] = self.datadir
        if self.replication:
            env["SUBSIDY_REPLICATION"] = str(self.replication)
        if self.web_port:
            env["SUBSIDY_WEB_PORT"] = str(self.web_port)
        env["SUBSIDY_STATE_STORE"] = self.state_store
        if self.session_timeout:
            env["SUBSIDY_SESSION_TIMEOUT"] = str(self.session_timeout)
        env["SUBSIDY_IDLE_AFTER"] = str(self.idle_after)
        env["SUBSIDY_BACKFILL"] = "1" if self.backfill else "0"
        if self.checkpoint_key:
            env["SUBSIDY_CHECKPOINT_KEY"] = self.checkpoint_key
            env["SUBSIDY_CHECKPOINT_EVERY_ENTRIES"] = str(self.checkpoint_every_entries)
            env["SUBSIDY_CHECKPOINT_EVERY_MINUTES"] = str(self.checkpoint_every_minutes)
        return env


# variable -> (StreamConfig field, conversion). SUBSIDY_WEB_BIND stays 127.0.0.1 unless a
# scraper elsewhere must reach /metrics.
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SUBSIDY_BROKER": ("broker", _broker_url),
    "SUBSIDY_LEDGER_URL": ("ledger_url", str),
    "SUBSIDY_POLICY": ("policy_path", str),
    "SUBSIDY_PARTITIONS": ("partitions", _whole_number),
    "SUBSIDY_REPLICATION": ("replication", _whole_number),
    "SUBSIDY_APP_ID": ("app_id", str),
    "SUBSIDY_DATADIR": ("datadir", str),
    "SUBSIDY_WEB_PORT": ("web_port", _whole_number),
    "SUBSIDY_WEB_BIND": ("web_bind", str),
    "SUBSIDY_STATE_STORE": ("state_store", str),
    "SUBSIDY_SESSION_TIMEOUT": ("session_timeout", _seconds),
    "SUBSIDY_IDLE_AFTER": ("idle_after", _seconds),
    "SUBSIDY_BACKFILL": ("backfill", _flag),
    "SUBSIDY_CHECKPOINT_KEY": ("checkpoint_key", str),
    "SUBSIDY_CHECKPOINT_EVERY_ENTRIES": ("checkpoint_every_entries", _whole_number),
    "SUBSIDY_CHECKPOINT_EVERY_MINUTES": ("checkpoint_every_minutes", _minutes),
}
