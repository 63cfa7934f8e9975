"""Apache Kafka itself, on machines with no Docker engine: a KRaft cluster of 1 or 3 nodes on
free loopback ports, for `subsidy up --kafka apache`, `subsidy demo --kafka apache` and the tests.

The broker is the Maven artifact ``org.apache.kafka:kafka_2.13`` at the version of ``pom.xml``
beside this file (the one docker-compose.yml runs). ``broker_classpath()`` copies it with its
dependencies into a cache folder once (``mvn dependency:copy-dependencies``); every node is then
``java -cp 'CACHE/lib/*' kafka.Kafka server.properties`` on a log directory of its own, formatted
with ``kafka.tools.StorageTool``. Only processes started here are ever signalled.

    with ApacheKafka(nodes=3) as kafka:
        kafka.bootstrap          # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        kafka.kill(2)            # SIGKILL node 2 (a crash); kafka.start_node(2) brings it back
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Mapping

from streams.loopback import answers_kafka, die_with_parent, free_port

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text(encoding="utf-8")).group(1)  # type: ignore[union-attr]
#: JVM heap per node: Kafka's own start script gives 1 GiB; three test nodes need far less
NODE_HEAP = "-Xms128m -Xmx512m"


class ApacheKafkaError(RuntimeError):
    """Apache Kafka could not be fetched, started or reached; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("SUBSIDY_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "subsidy")
    return Path(base) / f"kafka_2.13-{KAFKA_VERSION}"


def broker_classpath(progress: Callable[[str], None] = lambda line: None) -> str:
    """The broker's classpath (``DIR/*``), fetched from Maven Central into the cache on first use."""
    lib = cache_dir() / "lib"
    if (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return f"{lib}/*"
    for tool, package in (("java", "openjdk-17-jre-headless"), ("mvn", "maven")):
        if not shutil.which(tool):
            raise ApacheKafkaError(f"Apache Kafka {KAFKA_VERSION} needs `{tool}`, which is not on PATH: "
                                   f"install it (apt-get install {package}) or use the embedded broker (--kafka tansu)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes fetching at once: one fetches, one waits
        if not (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            progress(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {lib.parent} (once)")
            staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
            done = subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                                   f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
                raise ApacheKafkaError(f"fetching Apache Kafka {KAFKA_VERSION} with Maven failed ({' / '.join(tail)}); "
                                       "check that Maven Central is reachable")
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)
    return f"{lib}/*"


class ApacheKafka:
    """A KRaft cluster of ``nodes`` combined broker+controller nodes on 127.0.0.1.

    ``properties`` override the broker settings of every node (a test's tiny default retention,
    say). With 3 nodes the internal topics are replicated 3 times, ``min.insync.replicas`` 2.
    """

    def __init__(self, nodes: int = 1, *, workdir: str | os.PathLike[str] | None = None,
                 properties: Mapping[str, str] | None = None, start_timeout: float = 90.0,
                 progress: Callable[[str], None] = lambda line: None):
        if nodes not in (1, 3):
            raise ValueError("a local Apache Kafka cluster has 1 or 3 nodes")
        self.nodes = nodes
        self.properties = dict(properties or {})
        self.start_timeout = start_timeout
        self.progress = progress
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="apache-kafka-"))
        self.ports = {node: free_port() for node in self.node_ids}
        self.controller_ports = {node: free_port() for node in self.node_ids}
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()  # a Kafka Uuid
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._classpath = ""

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[node]}" for node in self.node_ids)

    def node_bootstrap(self, node: int) -> str:
        return f"127.0.0.1:{self.ports[node]}"

    def log_path(self, node: int) -> Path:
        return self.workdir / f"node-{node}.log"

    def log_tail(self, node: int, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(node).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def _properties_file(self, node: int) -> Path:
        replicas = min(3, self.nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": ",".join(f"{n}@127.0.0.1:{self.controller_ports[n]}" for n in self.node_ids),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node]},CONTROLLER://127.0.0.1:{self.controller_ports[node]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node]}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / f"node-{node}"),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min(2, replicas)),
            "min.insync.replicas": str(min(2, replicas)),
            # a group's first rebalance waits 3 s for more members by default; tests start them together anyway
            "group.initial.rebalance.delay.ms": "0",
            **self.properties,
        }
        path = self.workdir / f"node-{node}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
        return path

    def start(self) -> "ApacheKafka":
        self._classpath = broker_classpath(self.progress)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.node_ids:
            if not (self.workdir / f"node-{node}" / "meta.properties").exists():
                self._java("kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}", "-c", str(self._properties_file(node)),
                           "--ignore-formatted")
        for node in self.node_ids:
            self._spawn(node)
        self.wait_ready()
        return self

    def _java(self, main: str, *args: str) -> None:
        done = subprocess.run(["java", "-cp", self._classpath, main, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ApacheKafkaError(f"{main} {' '.join(args)} failed: {(done.stdout + done.stderr).strip()[-800:]}")

    def _spawn(self, node: int) -> None:
        assert node not in self._procs or self._procs[node].poll() is not None, f"node {node} is running"
        command = ["java", *NODE_HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
                   f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
                   "-cp", self._classpath, "kafka.Kafka", str(self._properties_file(node))]
        with open(self.log_path(node), "ab") as log:
            self._procs[node] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True, preexec_fn=die_with_parent)

    def start_node(self, node: int, *, wait: bool = True) -> None:
        """Start a node that was killed or stopped, on its log directory (its data survives)."""
        self._spawn(node)
        if wait:
            self.wait_ready()

    def kill(self, node: int) -> None:
        """SIGKILL one node: a crash, no controlled shutdown."""
        proc = self._procs.get(node)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    def running(self, node: int) -> bool:
        proc = self._procs.get(node)
        return proc is not None and proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until every running node is registered with the controller and answers metadata."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + (timeout or self.start_timeout)
        running = [node for node in self.node_ids if self.running(node)]
        last = "no answer yet"
        while time.monotonic() < deadline:
            for node in running:
                if not self.running(node):
                    raise ApacheKafkaError(f"Apache Kafka node {node} exited with {self._procs[node].returncode}; "
                                           f"log {self.log_path(node)}:\n{self.log_tail(node)}")
            silent = [node for node in running if not answers_kafka("127.0.0.1", self.ports[node])]
            if silent:
                last = f"nodes {silent} do not answer yet"
                time.sleep(0.3)
                continue
            try:
                admin = KafkaAdminClient(bootstrap_servers=",".join(self.node_bootstrap(n) for n in running),
                                         client_id="apache-kafka-ready", request_timeout_ms=5000)
                try:
                    brokers = {b.get("node_id", b.get("broker_id")) for b in admin.describe_cluster()["brokers"]}
                finally:
                    admin.close()
                if set(running) <= brokers:
                    return
                last = f"registered: {sorted(brokers)}"
            except (KafkaError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise ApacheKafkaError(f"Apache Kafka on {self.bootstrap} did not serve within {timeout or self.start_timeout:.0f}s "
                               f"({last}); logs in {self.workdir}")

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._procs.clear()

    def __enter__(self) -> "ApacheKafka":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type, *exc) -> None:
        self.stop()
        if self._owns_workdir and exc_type is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
