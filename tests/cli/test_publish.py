"""`subsidy publish`, as an upstream engineer meets it: a file is checked whole before anything is
sent, and a broker that does not answer is named in one line."""

from __future__ import annotations

import json

import pytest

import streams.tools.publish
from schemas.inputs import INPUT_TOPICS
from streams.apache_kafka import ApacheKafka
from streams.loopback import free_port
from streams.tansu.broker import create_topics
from subsidy.cli import main


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("subsidy: error: ") and err.count("\n") == 1, err
    return err


def _file(tmp_path, *lines: str):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps({"topic": "compute-purchases", "value": {"event_id": "E-1", "source": "tianfu-compute-billing"}})


def test_a_bad_line_is_named_before_any_broker_is_asked(tmp_path, capsys):
    path = _file(tmp_path, GOOD, "not json")
    # port 9 answers nothing: an error this quick shows the broker was never asked
    err = _one_line_error(capsys, ["publish", str(path), "--broker", "127.0.0.1:9"])
    assert f"{path}: line 2: not a JSON envelope" in err and "nothing was sent" in err


def test_a_topic_no_worker_reads_is_refused(tmp_path, capsys):
    path = _file(tmp_path, GOOD, json.dumps({"topic": "compute-purchase", "value": {}}))
    err = _one_line_error(capsys, ["publish", str(path), "--broker", "127.0.0.1:9"])
    assert "line 2: topic 'compute-purchase' is not an input topic" in err and "compute-purchases" in err


def test_a_broker_nobody_answers_at(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(streams.tools.publish, "BOOTSTRAP_TIMEOUT_S", 2)
    broker = f"127.0.0.1:{free_port()}"
    err = _one_line_error(capsys, ["publish", str(_file(tmp_path, GOOD)), "--broker", broker])
    assert f"no broker answered at {broker} within 2 s" in err and "--broker" in err and "nothing was sent" in err


class _RefusingProducer:
    """A broker that acknowledges every other message: the refused ones fail their futures, as a
    NotLeaderForPartition still unresolved at the delivery timeout does."""

    def __init__(self, **config):
        self.sent = 0

    def send(self, topic, key=None, value=None):
        from kafka.errors import NotLeaderForPartitionError
        from kafka.producer.future import FutureProduceResult

        self.sent += 1
        future = FutureProduceResult(None)
        if self.sent % 2:
            future.failure(NotLeaderForPartitionError())
        else:
            future.success(None)
        return future

    def flush(self):
        pass

    def close(self):
        pass


def test_messages_the_broker_never_acknowledged_are_counted_not_reported_as_sent(tmp_path, capsys, monkeypatch):
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", _RefusingProducer)
    err = _one_line_error(capsys, ["publish", str(_file(tmp_path, GOOD, GOOD, GOOD)), "--broker", "127.0.0.1:9"])
    assert "2 of 3 messages were not acknowledged by 127.0.0.1:9 (first: NotLeaderForPartitionError" in err
    assert "publishing the whole file again is safe" in err


def _messages_in(bootstrap: str, topic: str) -> int:
    """Counted by reading them all: tansu's end offsets fall short (streams/tansu/README.md)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1500)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


@pytest.mark.integration
def test_a_file_with_a_bad_line_sends_nothing_to_a_real_broker(tmp_path, capsys):
    with ApacheKafka(workdir=tmp_path / "kafka") as broker:
        create_topics(broker.bootstrap, {topic: 1 for topic in INPUT_TOPICS})
        bad = _file(tmp_path, GOOD, GOOD, '{"topic": "model-invoices"}')
        assert "line 3: must be" in _one_line_error(capsys, ["publish", str(bad), "--broker", broker.bootstrap])
        assert _messages_in(broker.bootstrap, "compute-purchases") == 0
        assert main(["publish", str(_file(tmp_path, GOOD, GOOD)), "--broker", broker.bootstrap]) == 0
        assert _messages_in(broker.bootstrap, "compute-purchases") == 2
