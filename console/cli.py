"""``subsidy console``: serve the operators' console on 127.0.0.1 by default;
``subsidy console users add NAME --role R``: add an operator."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_console_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "console",
        help="serve the operators' console (web page, JSON API, /metrics); `console users add` adds an operator",
        description="Serve the operators' console: budget burn-down, payees nearest their caps, recent decisions, "
        "rejections, stream lag and payees on hold, with a JSON API (/openapi.json) and Prometheus /metrics. It reads the "
        "ledger through $SUBSIDY_LEDGER_READER_URL (else $SUBSIDY_LEDGER_URL) and records operators' holds and releases "
        "through $SUBSIDY_LEDGER_URL; --ledger sets both. Once the ledger has an operator, its data needs a login.",
    )
    parser.add_argument("--ledger", default=None, metavar="URL", help="ledger database URL for reading and for operators' actions "
                        "(default: $SUBSIDY_LEDGER_READER_URL to read, $SUBSIDY_LEDGER_URL to record, else the embedded SQLite file)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}; anything else exposes the console to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--worker-metrics", action="append", default=[], metavar="URL", help="a stream worker's Prometheus /metrics URL; repeat once per worker")
    parser.add_argument("--policy", default=None, metavar="FILE", help="policy file (default: the shipped policy)")
    parser.add_argument("--whatif", default=None, metavar="FILE", help="a what-if saved by `subsidy whatif ... --save FILE`, shown beside the burn-down")
    parser.set_defaults(func=run_console)
    users = parser.add_subparsers(dest="console_command", metavar="users").add_parser("users", help="the console's operators")
    add = users.add_subparsers(dest="users_command", metavar="add", required=True).add_parser(
        "add", help="add an operator (password prompted, or read from stdin when it is not a terminal)",
        description="Add an operator of the console, stored in the ledger database (console_users) with an scrypt hash of its "
        "password. Roles: viewer (reads), maker (+ holds a payee), checker (+ releases a hold another placed), admin (all). "
        "Run it with a URL that may write console_users (on PostgreSQL the superuser or the migrator, not the writer).")
    add.add_argument("name", help="user name: 1 to 64 of a-z 0-9 . _ -")
    add.add_argument("--role", required=True, choices=["viewer", "maker", "checker", "admin"], help="what the operator may do (each role may do what the ones before it may)")
    add.add_argument("--ledger", dest="users_ledger", default=None, metavar="URL", help="ledger database URL (default $SUBSIDY_LEDGER_URL or the embedded SQLite file)")
    add.set_defaults(func=add_user)


def _password() -> str:
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise _command_error("the two passwords differ: nothing added")
    return password


def add_user(args: argparse.Namespace) -> int:
    from console.users import UserError
    from console.users import add_user as store_user
    from sinks.ledger import first_line, holds_ledger, ledger_url, make_engine, shown_url

    url = ledger_url(args.users_ledger or args.ledger)
    try:
        present = holds_ledger(url)
    except Exception as error:  # noqa: BLE001 - the URL's or the database's fault: one line
        raise _command_error(f"cannot open ledger {shown_url(url)}: {first_line(error)}") from None
    if not present:
        raise _command_error(f"no ledger at {shown_url(url)}: `subsidy ledger init` creates one; check --ledger")
    password = _password()
    engine = make_engine(url)
    try:
        store_user(engine, args.name, args.role, password)
    except UserError as error:
        raise _command_error(str(error)) from None
    except Exception as error:  # noqa: BLE001 - the database's refusal, in one line
        raise _command_error(f"cannot add {args.name} to {shown_url(url)}: {first_line(error)}") from None
    finally:
        engine.dispose()
    print(f"{args.name} added as {args.role} to the console's operators of {shown_url(url)}")
    return 0


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
    from console.whatif import SavedWhatIfError, load_saved_whatif
    from rules.policy import load_policy
    from sinks.ledger import ledger_url, reader_ledger_url

    url = reader_ledger_url(args.ledger)
    policy = load_policy(args.policy) if args.policy else load_policy()
    try:
        whatif = load_saved_whatif(args.whatif) if args.whatif else None
        app = build_console(url, policy, args.worker_metrics, writer_url=ledger_url(args.ledger), whatif=whatif)
    except (ConsoleError, SavedWhatIfError) as error:
        raise _command_error(str(error)) from None
    note = missing_ledger_note(url)

    def serving(_banner: str) -> None:  # aiohttp calls it once the port is bound: no address is announced that is not served
        print(f"console: http://{args.host}:{args.port}/  (ledger {shown_url(url)}; API /openapi.json, metrics /metrics)", flush=True)
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
