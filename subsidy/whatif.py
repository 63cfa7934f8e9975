"""``subsidy whatif EVENTS.jsonl --policy NEW.yaml [--against CURRENT.yaml] [--json] [--save FILE]``:
what a policy change would pay, before it is made.

The events are decided under both policy files in memory (``rules.whatif``: no ledger, no
broker), as ``subsidy replay`` decides them. ``--save FILE`` keeps the comparison (the ``--json``
document, with which files it compared) for ``subsidy console --whatif FILE``, which shows its
exhaustion dates beside the live burn-down.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rules.inputs import EXCLUSIONS_TOPIC
from rules.intake import Rejected
from rules.money import format_fen
from rules.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from rules.whatif import Comparison, Outcome, compare, parse_events, simulate
from subsidy.replay import parse_envelope

DEFAULT_TOP = 10


class WhatIfError(Exception):
    """A problem with the events file a person must fix (one line)."""


def read_events(path: str) -> tuple[list[tuple[str, bytes]], int]:
    """The (topic, message bytes) of every event line that makes claims, and how many lines are
    no event envelope. Exclusion listings only hold payments, so they change no amount: left out."""
    if not os.path.isfile(path):
        raise WhatIfError(f"events file {path!r} does not exist" if not os.path.exists(path) else f"{path!r} is not a file")
    events: list[tuple[str, bytes]] = []
    malformed = lines = 0
    try:
        with open(path, "rb") as source:
            for line in source:
                if not line.strip():
                    continue
                lines += 1
                try:
                    topic, raw, _value = parse_envelope(line.rstrip(b"\r\n"))
                except Rejected:
                    malformed += 1
                    continue
                if topic != EXCLUSIONS_TOPIC:
                    events.append((topic, raw))
    except OSError as exc:
        raise WhatIfError(f"cannot read events file {path!r}: {exc.strerror}") from None
    if lines and malformed == lines:
        raise WhatIfError(f"{path}: not one of its {lines:,} lines is an event envelope {{\"topic\": ..., \"value\"|\"raw\": ...}}: is it the events file? (`subsidy generate` writes one)")
    return events, malformed


def run_whatif(events_path: str, new: Policy, current: Policy) -> tuple[Comparison, int, int, float]:
    """The comparison, the events read, the lines that were no envelope, and the seconds it took."""
    started = time.monotonic()
    events, malformed = read_events(events_path)
    messages = parse_events(events)  # once for both sides: a third of intake's time
    if (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods():
        # The two sides are independent: decided side by side they take the time of one (issue 28: < 10 s a year).
        new_side = _in_forked_child(lambda: simulate(messages, [new]))
        outcomes = [simulate(messages, [current]), new_side()]
    else:
        outcomes = [simulate(messages, [policy]) for policy in (current, new)]
    comparison = compare(*outcomes)
    return comparison, len(events), malformed, time.monotonic() - started


def _in_forked_child(work: Callable[[], Outcome]) -> Callable[[], Outcome]:
    """Start ``work`` in a forked child, which inherits what it reads (the parsed messages are not
    pickled, unlike a process pool's arguments); the returned call waits for its result."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        try:
            send.send(("ok", work()))
        except BaseException as error:  # noqa: BLE001 - handed to the parent, which raises it
            send.send(("error", error))

    child = context.Process(target=run, daemon=True)
    child.start()
    send.close()

    def result() -> Outcome:
        try:
            status, value = receive.recv()
        except EOFError:
            raise RuntimeError(f"the what-if's second process ended without an answer (exit code {child.exitcode})") from None
        finally:
            child.join()
        if status == "error":
            raise value
        return value

    return result


def _label(policy: Policy, path: Path) -> str:
    return f"{policy.policy_id} {policy.version} ({path})"


def format_comparison(comparison: Comparison, current: tuple[Policy, Path], new: tuple[Policy, Path], events: int, malformed: int, seconds: float, top: int) -> str:
    document = comparison.to_json()
    lines = [
        f"current     {_label(*current)}",
        f"new         {_label(*new)}",
        f"events      {events:,} decided under each in {seconds:.1f} s"
        + (f" ({malformed:,} lines no event envelope)" if malformed else "")
        + f"; rejected by intake: {comparison.current.rejected:,} current, {comparison.new.rejected:,} new",
        "granted (net of clawbacks, CNY):",
    ]
    rows = [(name, year, document["current"]["granted"].get(name, {}).get(year, "0.00"), document["new"]["granted"].get(name, {}).get(year, "0.00"), change)
            for name, years in document["diff"].items() for year, change in years.items()]
    width = max((len(row[0]) for row in rows), default=6)
    lines.append(f"  {'clause':<{width}}  year  {'current':>16}  {'new':>16}  {'difference':>16}")
    for name, year, before, after, change in rows:
        lines.append(f"  {name:<{width}}  {year}  {before:>16}  {after:>16}  {change:>16}")
    totals = [sum(fen for clauses in outcome.granted.values() for years in clauses.values() for fen in years.values()) for outcome in (comparison.current, comparison.new)]
    lines.append(f"  {'total':<{width}}        {format_fen(totals[0]):>16}  {format_fen(totals[1]):>16}  {format_fen(totals[1] - totals[0]):>16}")
    exhaustion = document["exhaustion"]
    budgets = sorted({(name, year) for side in exhaustion.values() for name, years in side.items() for year in years})
    lines.append("budgets run out on (programme-year caps; - lasts the year):")
    for name, year in budgets:
        before = exhaustion["current"].get(name, {}).get(year) or "-"
        after = exhaustion["new"].get(name, {}).get(year) or "-"
        lines.append(f"  {name:<{width}}  {year}  {before:>16}  {after:>16}")
    changes = comparison.changes
    lines.append(f"payees affected {len(changes):,}" + (f", the {min(top, len(changes))} largest changes (CNY):" if changes and top else ""))
    for change in changes[:top]:
        lines.append(f"  {change.payee_id:<20} {format_fen(change.current):>14} -> {format_fen(change.new):>14}  {format_fen(change.change):>14}  {change.name}")
    return "\n".join(lines)


def cmd_whatif(args: argparse.Namespace) -> int:
    from subsidy.cli import CommandError

    new_path = Path(args.policy)
    current_path = Path(args.against) if args.against else DEFAULT_POLICY_PATH
    # as text, so that a list of files (city.yaml:district.yaml) runs the programmes together
    new, current = load_policy(str(new_path)), load_policy(str(current_path))
    if args.top < 0:
        raise CommandError("--top must be 0 or more")
    try:
        comparison, events, malformed, seconds = run_whatif(args.events, new, current)
    except WhatIfError as exc:
        raise CommandError(str(exc)) from None
    document = comparison.to_json()
    if args.save:
        saved: dict[str, Any] = {
            **document,
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "events_file": os.path.abspath(args.events),
            "policies": {"current": _described(current, current_path), "new": _described(new, new_path)},
        }
        try:
            Path(args.save).write_text(json.dumps(saved, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.save!r}: {exc.strerror}") from None
    if args.json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, separators=(", ", ": ")) + "\n")
    else:
        print(format_comparison(comparison, (current, current_path), (new, new_path), events, malformed, seconds, args.top))
        if args.save:
            print(f"saved       {args.save} (`subsidy console --whatif {args.save}` shows it beside the burn-down)")
    return 0


def _described(policy: Policy, path: Path) -> dict[str, str]:
    return {"policy_id": policy.policy_id, "version": policy.version, "file": str(path)}


def add_whatif_command(subparsers) -> None:
    parser = subparsers.add_parser("whatif", help="what a policy change would pay: the events decided under two policy files, in memory",
                                   description="Decide the events under the current and a new policy file in memory (no ledger) and "
                                   "print the totals per programme, clause and year under each, the difference, the payees affected "
                                   "(largest changes first) and the day each programme budget ran out under each.")
    parser.add_argument("events", metavar="EVENTS.jsonl")
    parser.add_argument("--policy", required=True, metavar="NEW.yaml", help="the policy file as it would be")
    parser.add_argument("--against", metavar="CURRENT.yaml", help=f"the policy file as it is (default {DEFAULT_POLICY_PATH})")
    parser.add_argument("--json", action="store_true", help='print {"current", "new", "diff", "payees_affected", "exhaustion"} as JSON')
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"payees with the largest changes to list (default {DEFAULT_TOP})")
    parser.add_argument("--save", metavar="FILE", help="also write the comparison to FILE, for `subsidy console --whatif FILE`")
    parser.set_defaults(func=cmd_whatif)
