"""Event-time order: within a clause, claims take budget in the order they happened, not arrived.

Under a finite budget who is paid depends on which claim is decided first. The decide stage
therefore does not hand a claim to the engine when it arrives: an ``EventTimeOrder`` holds it
until no earlier claim of its clause can still come, then releases claims of a clause in the
order of their ``order_key``: (``occurred_at`` as an instant, ``source``, ``event_id``). A replay
of a file (``subsidy replay``, ``ledger reconcile --against``) decides claims in that same order
(``in_event_time_order``), so the pipeline and a replay pay the same claims, to the fen.

Use, in the decide stage of one claims partition::

    order = EventTimeOrder(policy, inputs, state)  # inputs: every (topic, partition) of intake
    order.progress(("compute-purchases", 3), watermark)  # intake read that input up to this time
    late = order.offer(claim)  # None: held (or a copy of a held claim); else decide it now:
    engine.decide(late.claim, late_by=late.late_by)  # its decision says how late it came
    for claim in order.release():  # claims whose wait is over, in order
        engine.decide(claim)

* The watermark W is the minimum over every expected input partition of the latest watermark
  reported for it (each kept at its maximum), and there is none until every partition has
  reported. A partition that has no new input must still report (e.g. the time it was last
  polled), or W stops and with it every release.
* A claim is released once ``occurred_at + allowed_lateness < W``, where the allowed lateness
  is the clause's (policy file, ``allowed_lateness``) on the claim's day. Strictly before W:
  W is the time of the latest record read, and another at that very instant may follow it.
* A claim that sorts before the last claim already released for its clause is late: it is
  returned by ``offer`` at once, to be decided in arrival order, with ``late_by``, how far its
  ``occurred_at`` is behind that last released claim's, as an ISO 8601 duration (``P1DT2H``,
  ``PT0S`` when it lost only on the tie-break). A claim that is not late is never decided late.
* The claims of one event under several clauses (programmes run together) share an order key:
  they leave in the policy's order of clauses, the order intake makes them and a replay keeps.
* A copy of a held claim (same clause, source and event_id, same content) is held once. One
  with other content is held beside it: the engine decides the first and refuses the reuse.

Everything it needs lives in ``state``, a ``MutableMapping[str, dict]`` like the engine's, so a
worker restarted on the changelog continues exactly where it stopped. Keys are JSON lists:

* ``["held", clause, instant, source, event_id]`` -> ``{"claims": [Claim.to_dict(), ...]}``;
* ``["watermark", topic, partition]`` -> ``{"at": instant}``;
* ``["released", clause]`` -> ``{"at": instant, "source": ..., "event_id": ...}``, the last released;

where an instant is the UTC time as ``2026-03-01T02:00:00.000000`` (fixed width, so text order
is time order). Construction reads every entry of ``state`` to rebuild an in-memory heap per
clause, so give it a mapping (a table) of its own, not the engine's.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from dataclasses import dataclass
from typing import Any, Iterable, MutableMapping

from rules.intake import Claim
from rules.policy import Policy

OrderKey = tuple[str, str, str]  # (UTC instant, source, event_id)
Input = tuple[str, int]  # an input (topic, partition) of intake

_NO_LATENESS = dt.timedelta(0)


def instant(moment: dt.datetime) -> str:
    """An aware time as fixed-width UTC text: text order is time order."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no offset; event times are instants")
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def order_key(claim: Claim) -> OrderKey:
    """The place of a claim in its clause's order: when it happened, then a stable tie-break."""
    return instant(dt.datetime.fromisoformat(claim.occurred_at)), claim.source, claim.event_id


def in_event_time_order(claims: Iterable[Claim]) -> list[Claim]:
    """The order a replay decides ``claims`` in: what an ``EventTimeOrder`` releases once every
    claim was offered and W is past them all (copies kept: the engine re-emits their decision)."""
    return sorted(claims, key=order_key)


def format_late_by(delay: dt.timedelta) -> str:
    """A non-negative duration as ISO 8601: ``P2DT3H4M5.5S``, ``PT0S``."""
    micros = delay // dt.timedelta(microseconds=1)
    seconds, micros = divmod(micros, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    second_text = f"{seconds}.{micros:06d}".rstrip("0") if micros else str(seconds)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{second_text}S" if micros or seconds else "")
    if not days and not time:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


@dataclass(frozen=True, slots=True)
class Late:
    """A claim that came after its clause's allowed lateness: decide it now, ``late_by`` in its decision."""

    claim: Claim
    late_by: str


def _key(*parts: str | int) -> str:
    return json.dumps(parts, ensure_ascii=False)


def released_key(clause_id: str) -> str:
    """The state key of the last claim a clause released."""
    return _key("released", clause_id)


class EventTimeOrder:
    """Holds the claims of one claims partition until their turn (see the module's docstring)."""

    def __init__(self, policy: Policy, inputs: Iterable[Input], state: MutableMapping[str, dict[str, Any]]):
        self._policy = policy
        self._state = state
        self._marks: dict[Input, str] = {source: "" for source in inputs}  # "": not reported yet
        if not self._marks:
            raise ValueError("an event-time order needs the inputs whose watermarks it waits for")
        self._released: dict[str, OrderKey] = {}
        self._rank = {clause_id: n for n, clause_id in enumerate(policy.clauses)}
        # clause -> heap of (*order key, due): by order key, so that a clause's claims leave in order
        # even where its allowed lateness changes from one day to the next
        self._heaps: dict[str, list[tuple[str, str, str, str]]] = {}
        for key, value in state.items():
            kind, *parts = json.loads(key)
            if kind == "watermark" and (parts[0], parts[1]) in self._marks:
                self._marks[(parts[0], parts[1])] = value["at"]
            elif kind == "released":
                self._released[parts[0]] = (value["at"], value["source"], value["event_id"])
            elif kind == "held":
                clause_id, at, source, event_id = parts
                self._heaps.setdefault(clause_id, []).append((at, source, event_id, self._due(Claim.from_dict(value["claims"][0]))))
        for heap in self._heaps.values():
            heapq.heapify(heap)

    @property
    def watermark(self) -> str | None:
        """W as an instant: the least of every input's watermark; None until each has reported."""
        least = min(self._marks.values(), default="")
        return least or None

    @property
    def held(self) -> int:
        return sum(map(len, self._heaps.values()))

    def progress(self, source: Input, watermark: dt.datetime) -> None:
        """Intake has read ``source`` (an expected input) up to ``watermark``; an earlier report changes nothing."""
        if source not in self._marks:
            raise ValueError(f"{source} is not one of the inputs this order was built with")
        at = instant(watermark)
        if at > self._marks[source]:
            self._marks[source] = at
            self._state[_key("watermark", *source)] = {"at": at}

    def offer(self, claim: Claim) -> Late | None:
        """Hold ``claim`` for its turn (None), or hand it back at once when it is late."""
        key = order_key(claim)
        released = self._released.get(claim.clause_id)
        if released is not None and key < released:
            behind = dt.datetime.fromisoformat(released[0]) - dt.datetime.fromisoformat(key[0])
            return Late(claim, format_late_by(behind))
        state_key = _key("held", claim.clause_id, *key)
        held = self._state.get(state_key)
        if held is None:
            self._state[state_key] = {"claims": [claim.to_dict()]}
            heapq.heappush(self._heaps.setdefault(claim.clause_id, []), (*key, self._due(claim)))
        elif all(copy["fingerprint"] != claim.fingerprint for copy in held["claims"]):
            self._state[state_key] = {"claims": [*held["claims"], claim.to_dict()]}
        return None

    def release(self) -> list[Claim]:
        """The held claims whose wait is over: each clause's in order (clauses interleaved by time)."""
        watermark = self.watermark
        if watermark is None:
            return []
        released: list[tuple[OrderKey, int, Claim]] = []
        # in the policy's order of clauses, not the order this order first held them: the claims
        # of one event under several clauses share an order key, and leave as intake made them
        for clause_id, heap in sorted(self._heaps.items(), key=lambda item: self._rank.get(item[0], len(self._rank))):
            last = None
            while heap and heap[0][3] < watermark:
                at, source, event_id, _ = heapq.heappop(heap)
                last = (at, source, event_id)
                state_key = _key("held", clause_id, *last)
                released.extend((last, len(released), Claim.from_dict(copy)) for copy in self._state[state_key]["claims"])
                del self._state[state_key]
            if last is not None:
                self._released[clause_id] = last
                self._state[released_key(clause_id)] = {"at": last[0], "source": last[1], "event_id": last[2]}
        released.sort(key=lambda entry: entry[:2])
        return [claim for _, _, claim in released]

    def _due(self, claim: Claim) -> str:
        """The instant after which W releases ``claim``: its occurred_at plus its clause's allowed lateness."""
        clause = self._policy.clauses.get(claim.clause_id)
        lateness = clause.allowed_lateness.at(dt.date.fromisoformat(claim.day)) if clause else None
        return instant(dt.datetime.fromisoformat(claim.occurred_at) + (lateness or _NO_LATENESS))
