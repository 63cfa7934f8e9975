"""``subsidy topics check | create``: the pipeline's topics on a broker, for operators.

``check`` prints every topic with its partitions, replicas and settings, then each problem in one
line with its fix (exit 0 when every topic is as the pipeline wants it, 1 otherwise; ``--json``:
a list, one object per topic). ``create`` first creates the missing topics with their settings
(streams/topics.py), then checks. Existing topics are never altered: the fixes say how.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

#: the settings shown in ``check``'s table, after partitions and replicas
_SETTING_COLUMNS = ("min.insync.replicas", "cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes",
                    "unclean.leader.election.enable")


def _command_error(message: str, exit_code: int = 2) -> Exception:
    from subsidy.cli import CommandError

    return CommandError(message, exit_code)


def render(report: Any) -> str:
    """``check``'s text: a table of the topics, then one line per problem."""
    headers = ("topic", "kind", "partitions", "replicas", *_SETTING_COLUMNS, "state")
    rows = []
    for spec in report.specs:
        state = report.found.get(spec.name)
        problems = report.problems_for(spec.name)
        if state is None:
            rows.append((spec.name, spec.kind, *["-"] * (len(headers) - 3), "missing"))
            continue
        verdict = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}" if problems else "ok"
        settings = (str(state.settings.get(setting)) for setting in _SETTING_COLUMNS)
        rows.append((spec.name, spec.kind, str(state.partitions), str(state.replication), *settings, verdict))
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (headers, *rows)]
    first = report.specs[0]
    lines.insert(0, f"broker {report.bootstrap}: {report.brokers} broker(s); wanted: {first.replication} replica(s), "
                    f"min.insync.replicas {first.settings['min.insync.replicas']}")
    if report.created:
        lines.insert(1, f"created {', '.join(report.created)}")
    if report.problems:
        stopping = sum(p.stops_worker for p in report.problems)
        lines.append(f"{len(report.problems)} problem(s), {stopping} of which stop a worker:")
        lines += [f"  {'STOPS A WORKER ' if p.stops_worker else ''}{p.line()}" for p in report.problems]
    else:
        lines.append(f"all {len(report.specs)} topics as the pipeline wants them")
    return "\n".join(lines)


def cmd_topics(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from streams.config import StreamConfig
    from streams.topics import TopicError, inspect_topics, unreachable

    broker = args.broker or os.environ.get("SUBSIDY_BROKER")
    if not broker:
        raise _command_error("say which broker: --broker HOST:PORT or SUBSIDY_BROKER")
    try:
        config = StreamConfig.from_env(broker=broker, partitions=args.partitions, app_id=args.app_id, replication=args.replication)
    except ValueError as exc:
        raise _command_error(str(exc)) from None
    try:
        report = inspect_topics(config.bootstrap, config.app_id, config.partitions, config.replication,
                                create_missing=args.topics_command == "create")
    except TopicError as exc:
        raise _command_error(str(exc)) from None
    except KafkaError as exc:
        raise _command_error(unreachable(config.bootstrap, exc)) from None
    print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else render(report))
    return 1 if report.problems else 0


def add_topics_commands(subparsers) -> None:
    topics = subparsers.add_parser("topics", help="the pipeline's topics on a broker: check their settings, create the missing ones")
    commands = topics.add_subparsers(dest="topics_command", metavar="TOPICS_COMMAND")
    commands.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--broker", metavar="HOST:PORT", help="bootstrap address (default $SUBSIDY_BROKER)")
    common.add_argument("--partitions", type=int, help="partitions the workers expect (default $SUBSIDY_PARTITIONS or 4)")
    common.add_argument("--app-id", help="the workers' app id, which names the state changelog (default $SUBSIDY_APP_ID or subsidy-pipeline)")
    common.add_argument("--replication", type=int, help="replicas of each topic (default $SUBSIDY_REPLICATION, else 3 on 3 brokers or more, 1 below)")
    common.add_argument("--json", action="store_true", help="a JSON list, one object per topic")
    check = commands.add_parser("check", parents=[common], help="every topic, its settings and what is wrong; exit 1 on any problem")
    check.set_defaults(func=cmd_topics)
    create = commands.add_parser("create", parents=[common], help="create the missing topics with their settings, then check")
    create.set_defaults(func=cmd_topics)
