"""``subsidy console``: serve the operators' console (read-only) on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_console_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "console",
        help="serve the read-only operators' console (web page, JSON API, /metrics)",
        description="Serve the operators' console: budget burn-down, payees nearest their caps, recent decisions, "
        "rejections and stream lag, with a JSON API (/openapi.json) and Prometheus /metrics. Read-only.",
    )
    parser.add_argument("--ledger", default=None, metavar="URL", help="ledger database URL (default: $SUBSIDY_LEDGER_URL or the embedded SQLite file)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}; anything else exposes the console to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--worker-metrics", action="append", default=[], metavar="URL", help="a stream worker's Prometheus /metrics URL; repeat once per worker")
    parser.add_argument("--policy", default=None, metavar="FILE", help="policy file (default: the shipped policy)")
    parser.set_defaults(func=run_console)


def missing_ledger_note(url: str) -> str | None:
    """A line for the operator when ``url`` holds no ledger yet (a mistyped --ledger, or workers
    not started): the console serves anyway, since a worker may create the ledger later."""
    from sinks.ledger import holds_ledger, shown_url

    try:
        if holds_ledger(url):
            return None
    except Exception:  # a server that does not answer: every request will say why
        return None
    return (f"console: no ledger at {shown_url(url)} yet: its pages answer 503 until a worker or `subsidy ledger init` "
            "creates one there (check --ledger if none will)")


def _command_error(message: str) -> Exception:
    try:
        from subsidy.cli import CommandError
    except ImportError:  # pragma: no cover
        return SystemExit(f"subsidy: error: {message}")
    return CommandError(message)


def run_console(args: argparse.Namespace) -> int:
    from aiohttp import web

    from console.app import build_console
    from console.readmodel import ConsoleError, shown_url
    from rules.policy import load_policy
    from sinks.ledger import ledger_url

    url = ledger_url(args.ledger)
    policy = load_policy(args.policy) if args.policy else load_policy()
    try:
        app = build_console(url, policy, args.worker_metrics)
    except ConsoleError as error:
        raise _command_error(str(error)) from None
    note = missing_ledger_note(url)

    def serving(_banner: str) -> None:  # aiohttp calls it once the port is bound: no address is announced that is not served
        print(f"console: http://{args.host}:{args.port}/  (ledger {shown_url(url)}, read-only; API /openapi.json, metrics /metrics)", flush=True)
        if note:
            print(note, file=sys.stderr, flush=True)

    try:
        web.run_app(app, host=args.host, port=args.port, print=serving, access_log=None)
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise _command_error(f"cannot serve on {args.host}:{args.port}: {os.strerror(error.errno) if error.errno else error}; "
                             "stop what uses it or choose another with --port (and --host)") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the console without the ``subsidy`` command (``python -m console.cli``)."""
    parser = argparse.ArgumentParser(prog="console")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_console_commands(subparsers)
    args = parser.parse_args(["console", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
