"""The topics of the pipeline: their partition counts and settings; creating and checking them.

Input topics and outputs are the wire contract's (/work/shared/contract.md). One internal
topic carries work between stages: ``subsidy-claims``, one claim per message, re-keyed from the
payee to the clause, so every running cap of a clause lives in one partition's table, and decide
books each batch in the ledger in decision order (the ledger does not read the payee-keyed
output topics). ``award-announcements`` has one partition, as count caps pay in the announcing
system's order. Every topic is created with explicit settings (``TOPIC_SETTINGS``), never the
broker's defaults. WHY each: docs/decisions/0008-claims-keyed-by-clause-booked-in-decide.md.

``inspect_topics`` creates what is missing and says what is wrong with what exists; a worker
refuses to start on a problem that could lose state (``Problem.stops_worker``), and
``subsidy topics check`` lists them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from schemas.inputs import EXCLUSIONS_TOPIC, INPUT_TOPICS, PAYEE_ACCOUNTS_TOPIC, PAYMENT_STATUS_TOPIC, PAYMENT_VOIDS_TOPIC
from streams.stage_outputs import MAX_RECORD_BYTES

CLAIMS_TOPIC = "subsidy-claims"
DECISIONS_TOPIC = "subsidy-decisions"
INSTRUCTIONS_TOPIC = "disbursement-instructions"
REJECTIONS_TOPIC = "subsidy-rejections"
OUTPUT_TOPICS = (INSTRUCTIONS_TOPIC, DECISIONS_TOPIC, REJECTIONS_TOPIC)
#: records of our own topics that the pipeline cannot read (streams/own_records.py), keyed like them
DEAD_LETTERS_TOPIC = "subsidy-dead-letters"
#: the ledger's signed checkpoints (sinks/ledger/checkpoints.py), published by the workers that book
CHECKPOINTS_TOPIC = "ledger-checkpoints"
STATE_TABLE = "subsidy-state"
ORDERED_INPUTS = frozenset({"award-announcements"})
#: what intake reads: the claims' topics, and the listings that hold payments, the accounts
#: payments go to and the bank's answers about them (contract v1.1), which make no claim, so
#: decide's event-time watermark does not wait for them; and operators' voids of payments (ours),
#: claims too rare for the watermark to wait for: a void is decided when the claims' inputs pass it
INTAKE_TOPICS = (*INPUT_TOPICS, EXCLUSIONS_TOPIC, PAYEE_ACCOUNTS_TOPIC, PAYMENT_STATUS_TOPIC, PAYMENT_VOIDS_TOPIC)

#: how long a broker has to answer the topic requests of a worker or of ``subsidy topics``
BROKER_TIMEOUT_SECONDS = 15.0

#: kinds of topic: what upstream publishes, what the engine's state lives in, what we publish
INPUT, STATE, OUTPUT = "input", "state", "output"

#: Kafka's own default (1 MiB and the 12 bytes of a record batch's log overhead), made explicit
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 + 12
#: an input of up to 1 MiB (the contract's bound on what we produce, and a default producer's
#: request) with its key and the record batch's framing
INPUT_MAX_MESSAGE_BYTES = 1024 * 1024 + 16 * 1024
#: the least max.message.bytes of a topic the pipeline writes: its largest record alone in a
#: record batch (a 61-byte header and at most 21 bytes of record framing, rounded up)
LEAST_MAX_MESSAGE_BYTES = MAX_RECORD_BYTES + 128

#: The settings of the topics the app creates, by kind, and why. Values are Kafka's own strings,
#: as describe_configs returns them; min.insync.replicas follows the replication factor
#: (``min_insync_replicas``).
TOPIC_SETTINGS: dict[str, dict[str, str]] = {
    INPUT: {
        # keyed by payee: compaction would keep each payee's newest input and delete the others
        "cleanup.policy": "delete",
        # what an auditor replays, and what a worker stopped for longer than any finite
        # retention still has to read; a few hundred MB a year
        "retention.ms": "-1",
        "retention.bytes": "-1",
        # what upstream may publish: an input of 1 MiB with its framing; intake bounds every
        # record it derives from an input, whatever its size (streams/stage_outputs.py)
        "max.message.bytes": str(INPUT_MAX_MESSAGE_BYTES),
        # a replica out of sync elected leader loses records the broker had acknowledged
        "unclean.leader.election.enable": "false",
        # the broker's clock, not the publisher's: intake rejects an input dated more than the
        # policy's clock_skew after the broker received it
        "message.timestamp.type": "LogAppendTime",
    },
    STATE: {
        # subsidy-claims and the state changelog. Delete, not compact: a claim re-decided after a
        # crash writes its changelog key again with the caps as they were when it was first
        # decided; compaction would keep that record and drop the first, so a restore would apply
        # it after later claims' records and restore stale caps (streams/state.py)
        "cleanup.policy": "delete",
        # a restore reads the changelog from its first record, and decide reads claims from its
        # committed offset: a record expired is a claim's cap charges forgotten (caps paid past)
        # or a claim never decided
        "retention.ms": "-1",
        "retention.bytes": "-1",
        # Kafka's default: twice our largest record (MAX_RECORD_BYTES)
        "max.message.bytes": str(KAFKA_DEFAULT_MAX_MESSAGE_BYTES),
        "unclean.leader.election.enable": "false",
    },
    OUTPUT: {
        # keyed by payee: compaction would keep one decision, instruction or rejection per payee
        "cleanup.policy": "delete",
        # finance, operators and audit read them at their own pace; a consumer stopped for
        # longer than a finite retention would miss payments. The ledger holds them too.
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "max.message.bytes": str(KAFKA_DEFAULT_MAX_MESSAGE_BYTES),
        "unclean.leader.election.enable": "false",
    },
}
#: every setting read back from the broker to check a topic
CHECKED_SETTINGS = ("cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes",
                    "unclean.leader.election.enable", "min.insync.replicas")

#: settings whose wrong value makes a worker refuse to start, by kind (they could lose state or
#: stop the worker later); the others are reported by ``subsidy topics check``. Partitions,
#: replication and min.insync.replicas stop a worker on every topic.
STOPS_WORKER: dict[str, frozenset[str]] = {
    INPUT: frozenset({"cleanup.policy"}),
    STATE: frozenset({"cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes", "unclean.leader.election.enable"}),
    OUTPUT: frozenset({"cleanup.policy", "max.message.bytes"}),
}

#: what a wrong value of each setting does, by kind
_WHY: dict[tuple[str, str], str] = {
    (INPUT, "retention"): "older inputs are deleted: an auditor cannot replay them, and a worker stopped for longer loses inputs it had not read",
    (STATE, "retention"): "older records are deleted, and the engine's state loses claims (caps restored without them and paid past, or claims never decided)",
    (OUTPUT, "retention"): "older records are deleted: a consumer stopped for longer misses them",
    (INPUT, "cleanup.policy"): "compaction keeps only each payee's newest input and deletes the others undecided",
    (STATE, "cleanup.policy"): "compaction keeps a claim's last record only, and a restore then applies stale caps (streams/state.py)",
    (OUTPUT, "cleanup.policy"): "compaction keeps only each payee's newest record",
    (INPUT, "max.message.bytes"): "upstream systems may publish messages of up to 1 MiB (the contract)",
    (STATE, "max.message.bytes"): f"the broker would refuse the pipeline's largest records ({MAX_RECORD_BYTES:,} bytes) and the worker stop",
    (OUTPUT, "max.message.bytes"): f"the broker would refuse the pipeline's largest records ({MAX_RECORD_BYTES:,} bytes) and the worker stop",
    (INPUT, "unclean.leader.election.enable"): "a replica out of sync elected leader loses acknowledged inputs",
    (STATE, "unclean.leader.election.enable"): "a replica out of sync elected leader loses acknowledged state",
    (OUTPUT, "unclean.leader.election.enable"): "a replica out of sync elected leader loses acknowledged records",
}


def unreachable(bootstrap: str, error: BaseException) -> str:
    """What a worker or ``subsidy topics`` says of a broker that did not answer."""
    from sinks.ledger import first_line

    return f"cannot reach the broker at {bootstrap} ({first_line(error)}): check --broker or $SUBSIDY_BROKER, and that the broker is up"


class TopicError(RuntimeError):
    pass


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{STATE_TABLE}-changelog"


def input_partitions(topic: str, partitions: int) -> int:
    return 1 if topic in ORDERED_INPUTS else partitions


def default_replication(brokers: int) -> int:
    """Three copies where the cluster has three brokers or more, one on a single broker."""
    return 3 if brokers >= 3 else 1


def min_insync_replicas(replication: int) -> int:
    """Two copies acknowledge every write, so that losing one broker loses no acknowledged record;
    with one copy there is nothing else. Two copies of two also means writes stop while one
    broker is down, rather than being acknowledged by a single one."""
    return 1 if replication == 1 else 2


@dataclass(frozen=True)
class TopicSpec:
    name: str
    kind: str  # INPUT, STATE or OUTPUT
    partitions: int
    replication: int
    settings: Mapping[str, str]  # topic configs, min.insync.replicas included


def input_partitions_of(partitions: int) -> list[tuple[str, int]]:
    """Every (input topic, partition) intake reads: decide's event-time watermark waits for each."""
    return [(topic, p) for topic in INPUT_TOPICS for p in range(input_partitions(topic, partitions))]


def topic_specs(app_id: str, partitions: int, replication: int = 1) -> list[TopicSpec]:
    """Every topic the app reads or writes, with what it is created with."""
    settings = {kind: {**values, "min.insync.replicas": str(min_insync_replicas(replication))} for kind, values in TOPIC_SETTINGS.items()}
    kinds = [(t, INPUT, input_partitions(t, partitions)) for t in INTAKE_TOPICS]
    kinds += [(CLAIMS_TOPIC, STATE, partitions), (changelog_topic(app_id), STATE, partitions)]
    kinds += [(t, OUTPUT, partitions) for t in (*OUTPUT_TOPICS, DEAD_LETTERS_TOPIC)]
    # one partition: the signed chain heads are one sequence; an output's settings (delete,
    # retention forever): every checkpoint is evidence kept, none compacted away
    kinds += [(CHECKPOINTS_TOPIC, OUTPUT, 1)]
    return [TopicSpec(name, kind, n, replication, settings[kind]) for name, kind, n in kinds]


def expected_topics(app_id: str, partitions: int) -> dict[str, int]:
    """Every topic the app reads or writes -> the partition count it expects."""
    return {spec.name: spec.partitions for spec in topic_specs(app_id, partitions)}


# -- what is wrong with a topic ------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    topic: str
    setting: str  # a topic config, or "exists", "partitions", "replication.factor"
    found: str | None
    wanted: str
    what: str  # what is wrong and what it does, for a person
    fix: str
    stops_worker: bool

    def line(self) -> str:
        return f"topic {self.topic}: {self.what}; fix: {self.fix}"

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.setting, "found": self.found, "wanted": self.wanted, "stops_worker": self.stops_worker,
                "what": self.what, "fix": self.fix}


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker has it."""

    partitions: int
    replication: int  # the fewest replicas of any of its partitions
    settings: Mapping[str, str]


def _alter_command(bootstrap: str, topic: str, setting: str, value: str) -> str:
    return (f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics --entity-name {topic} "
            f"--add-config {setting}={value}")


def create_command(bootstrap: str, app_id: str, partitions: int) -> str:
    """The ``subsidy topics create`` that makes the topics of this app."""
    from streams.config import DEFAULT_APP_ID, DEFAULT_PARTITIONS

    flags = "" if partitions == DEFAULT_PARTITIONS else f" --partitions {partitions}"
    flags += "" if app_id == DEFAULT_APP_ID else f" --app-id {app_id}"
    return f"subsidy topics create --broker {bootstrap}{flags}"


def problems_of(spec: TopicSpec, state: TopicState | None, bootstrap: str, create: str) -> list[Problem]:
    """What is wrong with one topic as the broker has it (``state`` None: it does not exist)."""
    name, kind = spec.name, spec.kind
    if state is None:
        return [Problem(name, "exists", None, "yes", "does not exist", create, True)]
    problems = []
    if state.partitions != spec.partitions:
        problems.append(Problem(name, "partitions", str(state.partitions), str(spec.partitions),
                                f"the app expects {spec.partitions} partitions, the broker has {state.partitions}",
                                "recreate the topic, or set SUBSIDY_PARTITIONS (--partitions) to the count the topics were made with", True))
    if state.replication < spec.replication:
        problems.append(Problem(name, "replication.factor", str(state.replication), str(spec.replication),
                                f"{state.replication} replica(s) where {spec.replication} were asked: a broker lost loses records",
                                f"add replicas with kafka-reassign-partitions.sh (a plan with {spec.replication} per partition), "
                                f"or accept fewer with SUBSIDY_REPLICATION={state.replication}", True))
    for setting in CHECKED_SETTINGS:
        wanted, found = spec.settings[setting], state.settings.get(setting)
        what = _wrong(kind, setting, wanted, found, state.replication)
        if what:
            stops = setting == "min.insync.replicas" or setting in STOPS_WORKER[kind]
            problems.append(Problem(name, setting, found, wanted, what, _alter_command(bootstrap, name, setting, wanted), stops))
    return problems


def _wrong(kind: str, setting: str, wanted: str, found: str | None, replication: int) -> str | None:
    """What is wrong with ``found`` for ``setting`` (None if nothing is)."""
    if setting == "max.message.bytes":
        least = KAFKA_DEFAULT_MAX_MESSAGE_BYTES if kind == INPUT else LEAST_MAX_MESSAGE_BYTES
        if found is not None and found.isdigit() and int(found) >= least:
            return None
        return f"max.message.bytes={found} is below {least}: {_WHY[kind, setting]}"
    if setting == "min.insync.replicas":
        count = int(found) if found is not None and found.isdigit() else 0
        if count > replication:
            return f"min.insync.replicas={found} is more than its {replication} replica(s): the broker refuses every write"
        if count < int(wanted):
            return f"min.insync.replicas={found} where {wanted} is wanted: a record acknowledged by fewer replicas is lost with one broker"
        return None
    if found == wanted:
        return None
    why = _WHY[kind, "retention" if setting.startswith("retention.") else setting]
    return f"{setting}={found} where {wanted} is wanted: {why}"


# -- the broker ----------------------------------------------------------------------------


@dataclass
class TopicsReport:
    """The pipeline's topics on one broker: what was asked, what is there, what is wrong."""

    bootstrap: str
    brokers: int
    specs: list[TopicSpec]
    found: dict[str, TopicState]
    problems: list[Problem]
    created: list[str] = field(default_factory=list)

    def problems_for(self, topic: str) -> list[Problem]:
        return [p for p in self.problems if p.topic == topic]

    def refusal(self) -> str | None:
        """One line on the first problem that stops a worker, or None."""
        stopping = [p for p in self.problems if p.stops_worker]
        if not stopping:
            return None
        more = f" (and {len(stopping) - 1} more: subsidy topics check --broker {self.bootstrap})" if len(stopping) > 1 else ""
        return stopping[0].line() + more

    def to_json(self) -> list[dict[str, Any]]:
        rows = []
        for spec in self.specs:
            state = self.found.get(spec.name)
            rows.append({
                "topic": spec.name, "kind": spec.kind, "exists": state is not None,
                "partitions": state.partitions if state else None,
                "replication_factor": state.replication if state else None,
                "settings": dict(state.settings) if state else {},
                "wanted": {"partitions": spec.partitions, "replication_factor": spec.replication, "settings": dict(spec.settings)},
                "created": spec.name in self.created,
                "problems": [p.to_json() for p in self.problems_for(spec.name)],
            })
        return rows


class TopicAdmin:
    """The topic requests of a worker and of ``subsidy topics``, over one kafka-python admin client."""

    def __init__(self, bootstrap: str, timeout: float | None = None):
        from kafka import KafkaAdminClient

        self.bootstrap = bootstrap
        self.timeout = BROKER_TIMEOUT_SECONDS if timeout is None else timeout
        millis = int(self.timeout * 1000)
        self.client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="subsidy-topics", request_timeout_ms=millis,
                                       bootstrap_timeout_ms=millis)

    def __enter__(self) -> "TopicAdmin":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.close()

    def broker_count(self) -> int:
        """Brokers registered with the cluster, those fenced for now included."""
        return len(self.client.describe_cluster()["brokers"])

    def create_missing(self, specs: list[TopicSpec]) -> list[str]:
        """Create the topics of ``specs`` that do not exist, with their settings, and wait until the
        broker shows them; an existing topic is left as it is. Returns the names created."""
        from kafka.errors import TopicAlreadyExistsError, for_code

        millis = int(self.timeout * 1000)
        response = self.client.create_topics(
            {spec.name: {"num_partitions": spec.partitions, "replication_factor": spec.replication, "configs": dict(spec.settings)}
             for spec in specs},
            timeout_ms=millis, raise_errors=False)
        created = []
        for topic in response.get("topics", []):
            code = topic.get("error_code", 0)
            if not code:
                created.append(topic["name"])
            elif for_code(code) is not TopicAlreadyExistsError:
                raise TopicError(f"creating topic {topic.get('name')!r} failed: {for_code(code).__name__} {topic.get('error_message') or ''}".rstrip())
        names = [spec.name for spec in specs]
        deadline = time.monotonic() + self.timeout
        while set(self.partition_counts(names)) != set(names):
            if time.monotonic() > deadline:
                missing = sorted(set(names) - set(self.partition_counts(names)))
                raise TopicError(f"topics {missing} not visible on {self.bootstrap} after {self.timeout:.0f}s")
            time.sleep(0.1)
        return created

    def partition_counts(self, names: list[str]) -> dict[str, int]:
        """The topics of ``names`` that exist -> their partition counts."""
        return {d["name"]: len(d["partitions"]) for d in self.client.describe_topics(names) if not d.get("error_code") and d.get("partitions")}

    def states(self, names: list[str]) -> dict[str, TopicState]:
        """The topics of ``names`` that exist, with their partitions, replication and checked settings."""
        from kafka.admin import ConfigResource, ConfigResourceType
        from kafka.errors import KafkaError

        described = [d for d in self.client.describe_topics(names) if not d.get("error_code") and d.get("partitions")]
        if not described:
            return {}
        try:
            configs = self.client.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, d["name"], list(CHECKED_SETTINGS)) for d in described],
                config_filter="all")["topic"]
        except KafkaError as exc:
            raise TopicError(f"{self.bootstrap} did not describe the topics' settings ({type(exc).__name__}: {exc}): "
                             "a worker needs a broker that answers DescribeConfigs, such as Apache Kafka") from None
        return {
            d["name"]: TopicState(
                partitions=len(d["partitions"]),
                replication=min(len(p["replica_nodes"]) for p in d["partitions"]),
                settings={key: entry["value"] for key, entry in configs.get(d["name"], {}).items()},
            )
            for d in described
        }


def inspect_topics(bootstrap: str, app_id: str, partitions: int, replication: int | None = None, *,
                   create_missing: bool = False) -> TopicsReport:
    """The pipeline's topics on ``bootstrap``, first creating those missing if ``create_missing``.

    ``replication`` None: ``default_replication`` of the cluster's size. Raises TopicError (a
    topic could not be created, more replicas asked than the cluster has brokers, a broker that
    cannot describe settings) and kafka-python's errors (no broker answers)."""
    with TopicAdmin(bootstrap) as admin:
        brokers = admin.broker_count()
        if replication is None:
            replication = default_replication(brokers)
        elif replication > brokers:
            raise TopicError(f"{replication} replicas asked (SUBSIDY_REPLICATION) but the cluster at {bootstrap} has {brokers} broker(s)")
        specs = topic_specs(app_id, partitions, replication)
        created = admin.create_missing(specs) if create_missing else []
        names = [spec.name for spec in specs]
        found = admin.states(names)
        # a topic just created shows on the broker that created it before the others, and the
        # next request may go to another: ask again until every one created is seen
        deadline = time.monotonic() + admin.timeout
        while set(created) - set(found) and time.monotonic() < deadline:
            time.sleep(0.2)
            found = admin.states(names)
    create = create_command(bootstrap, app_id, partitions)
    problems = [p for spec in specs for p in problems_of(spec, found.get(spec.name), bootstrap, create)]
    return TopicsReport(bootstrap, brokers, specs, found, problems, created)


def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, timeout: float | None = None) -> dict[str, int]:
    """Create missing topics with their settings; refuse (TopicError) an existing topic with another
    partition count. For brokers that cannot describe settings (the local tansu, streams/local.py).

    Returns the partition counts found. Idempotent: safe to run before every start.
    """
    with TopicAdmin(bootstrap, timeout) as admin:
        admin.create_missing(specs)
        actual = admin.partition_counts([spec.name for spec in specs])
    wrong = [f"{spec.name}: the app expects {spec.partitions} partitions, the broker has {actual[spec.name]}"
             for spec in specs if actual[spec.name] != spec.partitions]
    if wrong:
        raise TopicError("partition-count mismatch (recreate the topics or set SUBSIDY_PARTITIONS): " + "; ".join(wrong))
    return actual
