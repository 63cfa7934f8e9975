"""The ``subsidy`` command.

Subcommands set ``func`` (``args -> exit code``) with ``set_defaults``. The adapters add
their own: ``sinks.cli`` (ledger), ``sinks.payments_cli`` (payees, payments), ``streams.cli`` (worker,
up, publish, demo, trace), ``streams.tools.topics`` (topics), ``subsidy.explain`` (explain), ``subsidy.whatif``
(whatif) and ``console.cli`` (console).

A mistake the user can fix (a missing file, a bad policy file, a ledger URL that cannot be
opened) prints one line ``subsidy: error: ...`` on stderr and exits 2, without a traceback.
Hook commands get the same treatment by raising ``CommandError`` (or ``PolicyError``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from console.cli import add_console_commands
from rules.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy
from sinks.bank_cli import share
from sinks.cli import add_ledger_commands
from sinks.payments_cli import add_payment_commands
from streams.cli import add_stream_commands
from streams.tools.topics import add_topics_commands
from subsidy.explain import add_explain_command
from subsidy.runtime import tune_gc
from subsidy.whatif import add_whatif_command

USAGE_EXIT = 2


class CommandError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2 (or ``exit_code``)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors (an unknown option, a value its type refuses) in the one line
    every other mistake gets, instead of a usage block above the error."""

    def error(self, message: str):
        self.exit(USAGE_EXIT, f"subsidy: error: {message} (see `{self.prog} --help`)\n")


def _ledger_api():
    try:
        from sinks.ledger import DEFAULT_LEDGER_URL, Ledger
    except ImportError as exc:
        raise CommandError(f"the ledger is not available in this installation ({exc})") from None
    return Ledger, DEFAULT_LEDGER_URL


def _policy(path: str | None):
    return load_policy(path) if path else load_policy()


# --- generate ------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from subsidy.generate import generate_lines

    policy = _policy(args.policy)
    try:
        lines = generate_lines(args.year, seed=args.seed, enterprises=args.enterprises, events=args.events, policy=policy, void_rate=args.void_rate)
        if args.out == "-":
            count = 0
            for line in lines:
                sys.stdout.write(line + "\n")
                count += 1
            return 0
        try:
            out = open(args.out, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise CommandError(f"cannot write {args.out!r}: {exc.strerror}") from None
        count = 0
        with out:
            for line in lines:
                out.write(line)
                out.write("\n")
                count += 1
    except ValueError as exc:
        if isinstance(exc, PolicyError):
            raise
        raise CommandError(str(exc)) from None
    print(f"wrote {count:,} events for {args.year} to {args.out} (seed {args.seed}, {args.enterprises:,} enterprises)")
    return 0


# --- replay --------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from subsidy.progress import Progress
    from subsidy.replay import ReplayError, check_against_ledger, count_lines, format_summary, normalise_totals, replay

    policy = _policy(args.policy)
    if not os.path.isfile(args.events):
        raise CommandError(f"events file {args.events!r} does not exist" if not os.path.exists(args.events) else f"{args.events!r} is not a file")
    Ledger, _ = _ledger_api()
    from sinks.ledger import LedgerConflict, LedgerError, LedgerUnavailable, first_line, ledger_url, shown_url
    url = ledger_url(args.ledger)
    try:
        ledger = Ledger.open(url, timezone=policy.timezone)
    except Exception as exc:  # any failure to open is the URL's or the database's: say which, no traceback
        raise CommandError(f"cannot open ledger {shown_url(url)}: {first_line(exc)}") from None
    note = None
    try:
        bar = Progress(None, "replay")
        if bar.enabled:
            bar.total = count_lines(args.events)
        with bar:
            try:
                summary = replay(args.events, policy, ledger, batch_lines=args.batch, progress=bar)
            except ReplayError as exc:
                raise CommandError(str(exc)) from None
            except LedgerError as exc:
                first = getattr(exc, "replay_first_line", None)
                where = f"lines {first}- of {args.events} were not all stored" if first else "nothing more was stored"
                hint = ""
                if isinstance(exc, LedgerConflict):
                    hint = "; this ledger holds other input under the same event ids: replay into a fresh ledger (--ledger URL)"
                raise CommandError(f"ledger {shown_url(url)} refused a batch ({where}): {first_line(exc)}{hint}",
                                   exit_code=1 if isinstance(exc, LedgerUnavailable) else USAGE_EXIT) from None
        granted_totals = getattr(ledger, "granted_totals", None)
        if granted_totals is not None:
            problems = check_against_ledger(summary, normalise_totals(granted_totals()))
            if problems:
                print("subsidy: warning: the ledger holds less than this replay granted: " + "; ".join(problems), file=sys.stderr)
                note = "DISAGREES with this replay, see stderr"
            else:
                note = "totals cross-checked"
    finally:
        close = getattr(ledger, "close", None)
        if close is not None:
            close()
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json(), ensure_ascii=False, separators=(", ", ": ")) + "\n")
    else:
        print(format_summary(summary, policy, shown_url(url), note))
    return 0


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="subsidy", description="Chengdu AI policy subsidy pipeline")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    gen = subparsers.add_parser("generate", help="write a realistic, seeded year of input events as JSONL")
    gen.add_argument("--year", type=int, required=True, help="calendar (fiscal) year, e.g. 2026")
    gen.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write ('-' for stdout)")
    gen.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes (default 0)")
    gen.add_argument("--enterprises", type=int, default=1100, help="number of enterprises (default 1100)")
    gen.add_argument("--events", type=int, default=60000, help="approximate number of events (default 60000)")
    gen.add_argument("--void-rate", type=share, default=0.0, metavar="RATE",
                     help="share of purchases and invoices an operator voids some days later (payment-voids; default 0)")
    gen.add_argument("--policy", metavar="FILE[:FILE]", help=f"policy file, or files of programmes run together separated by ':' (default {DEFAULT_POLICY_PATH.name})")
    gen.set_defaults(func=cmd_generate)

    rep = subparsers.add_parser("replay", help="run a JSONL file of events through the rules into the ledger")
    rep.add_argument("events", metavar="EVENTS.jsonl")
    rep.add_argument("--policy", metavar="FILE[:FILE]", help=f"policy file, or files of programmes run together separated by ':' (default {DEFAULT_POLICY_PATH})")
    rep.add_argument("--ledger", metavar="URL", help="ledger database URL (default $SUBSIDY_LEDGER_URL or sqlite:///subsidy-ledger.sqlite)")
    rep.add_argument("--json", action="store_true", help='print only {"events", "rejected", "granted"} as JSON')
    rep.add_argument("--batch", type=int, default=1000, help=argparse.SUPPRESS)
    rep.set_defaults(func=cmd_replay)

    add_whatif_command(subparsers)
    add_ledger_commands(subparsers)
    add_explain_command(subparsers)
    add_payment_commands(subparsers)
    add_stream_commands(subparsers)
    add_topics_commands(subparsers)
    add_console_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_gc()
    try:
        return int(args.func(args) or 0)
    except (CommandError, PolicyError) as exc:
        print(f"subsidy: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", USAGE_EXIT)
    except KeyboardInterrupt:
        print("subsidy: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
