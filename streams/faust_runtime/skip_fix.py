"""Commit a record that a stage consumes only after the stage has handled it.

WHY: faust-streaming 0.15.3 counts records as processed that no agent saw (a record dropped
during a rebalance or a shutdown and acknowledged anyway, one unacknowledged record at a
partition's head, a fetch jump taken for a gap) and commits past them.
docs/decisions/0002-commit-only-what-a-stage-was-handed.md has the incidents and why inputs and
our own topics are treated differently.

* a dropped record: an acknowledgement counts only for a record a stage was handed
  (``handed``); nothing of its partition is committed until it has been read again;
* a hole at the head: on our own topics nothing is committed while the first record after the
  committed offset is unacknowledged (Faust's ``Consumer._new_offset`` lets one through);
* a gap (``Consumer._add_gap``): on our own topics it stops the worker before any commit can
  count it; in an input it is first read back from the broker (``records_in``,
  streams/input_gap_check.py): one that holds a record stops the worker, one that holds none is
  told to ``on_input_gap`` (counted) and taken.

A stage may also hold a record past its batch (decide keeps a claim until the event-time
watermark passes it: docs/decisions/0011): ``hold`` keeps Faust's acknowledgement of the
batch from counting for it, and nothing of its partition is committed past it until ``release``.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Collection

from faust.transport.consumer import Consumer

from streams.faust_runtime.versions import require_faust

#: (tp, offset) -> how many deliveries of that record stages were handed and have not acknowledged
_HANDED: dict[tuple, int] = {}
#: tp -> offsets of records dropped unread at or after the committed offset, not read again yet
_DROPPED: dict = {}
#: tp -> offsets of records a stage holds unacknowledged for now (decide's claims waiting for their turn)
_HELD: dict = {}
_FIX: dict = {"installed": False, "own_topics": frozenset(), "stage_topics": frozenset(), "on_gap": None, "on_dropped": None,
              "records_in": None, "on_input_gap": None}


def handed(message) -> None:
    """A stage is about to handle ``message``: its acknowledgement will count."""
    if message.topic in _FIX["stage_topics"]:
        key = (message.tp, message.offset)
        _HANDED[key] = _HANDED.get(key, 0) + 1


def hold(message, consumer) -> None:
    """A stage keeps ``message`` past its batch: the batch's acknowledgement must not count for it,
    and no commit may pass it until :func:`release`. Faust's own head logic would commit past an
    unacknowledged first record of a partition never committed before. The message is handled as
    far as the consumer is concerned: a rebalance or a shutdown must not wait for it
    (``Consumer.wait_empty`` waits for every unacknowledged message; held ones are read again by
    whoever takes the partition)."""
    message.incref()
    _HELD.setdefault(message.tp, set()).add(message.offset)
    consumer._unacked_messages.discard(message)


def release(message, consumer) -> None:
    """The held ``message`` is handled: acknowledge it (the last reference: Faust's ack then counts)."""
    offsets = _HELD.get(message.tp)
    if offsets is not None:
        offsets.discard(message.offset)
    message.ack(consumer)


def drop_held(messages) -> None:
    """Held records given up unacknowledged (a rebalance: they are read again from the committed offset)."""
    for message in messages:
        offsets = _HELD.get(message.tp)
        if offsets is not None:
            offsets.discard(message.offset)
        key = (message.tp, message.offset)
        pending = _HANDED.get(key, 0)
        if pending > 1:
            _HANDED[key] = pending - 1
        else:
            _HANDED.pop(key, None)


def consumer_view(consumer, tp) -> str:
    """Faust's view of ``tp`` when a gap shows, for the log line that stops the worker.

    A gap in the middle of a stream has been seen a few times in soaks (bench/README.md) and
    is not explained; these are the states that decide whether Faust hands a fetched record on
    (``Consumer.getmany``) or counts it read (``_drain_messages``)."""
    try:
        app = consumer.app
        sets = {name: tp in (getattr(consumer, f"_{name}_partitions") or ()) for name in ("active", "buffered", "paused")}
        return (f"flow_active={consumer.flow_active} generation={app.consumer_generation_id} in_recovery={app.in_recovery} "
                f"rebalancing={app.rebalancing} rebalances={app.rebalancing_count} " + " ".join(f"{name}={value}" for name, value in sets.items())
                + f" committed=@{consumer._committed_offset.get(tp)} acked_pending={len(consumer._acked.get(tp) or ())}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not keep the worker from stopping
        return f"(consumer state unavailable: {exc!r})"


def install(own_topics: Collection[str], on_gap: Callable[[object, int, int, str], None],
            on_dropped: Callable[[object, int], None] = lambda tp, offset: None,
            stage_topics: Collection[str] = (),
            records_in: Callable[[object, int, int], Awaitable[list[int]]] | None = None,
            on_input_gap: Callable[[object, int, int], None] = lambda tp, first, after: None) -> None:
    """Patch Faust's Consumer (idempotent). A gap (``first`` .. ``after - 1`` skipped, ``after``
    read next) in ``own_topics`` calls ``on_gap(tp, first, after, detail)``, which must
    not return normally (it stops the worker). In ``stage_topics`` (``own_topics`` are always
    included) an acknowledgement of a record no stage was handed is refused and told to
    ``on_dropped(tp, offset)``. A gap in the other stage topics is read back with
    ``records_in(tp, first, after)`` (the offsets holding a record; required with such topics):
    records there, or a failed check, call ``on_gap``; none, ``on_input_gap(tp, first, after)``,
    and Faust takes the gap."""
    if set(stage_topics) - set(own_topics) and records_in is None:
        raise ValueError("stage topics besides our own need records_in, to check a gap before Faust commits past it")
    _FIX["own_topics"] = frozenset(own_topics)
    _FIX["stage_topics"] = frozenset(stage_topics) | _FIX["own_topics"]
    _FIX["on_gap"] = on_gap
    _FIX["on_dropped"] = on_dropped
    _FIX["records_in"] = records_in
    _FIX["on_input_gap"] = on_input_gap
    if _FIX["installed"]:
        return
    require_faust("streams/faust_runtime/skip_fix.py", (Consumer, "_add_gap"), (Consumer, "ack"), (Consumer, "_new_offset"))
    original_add_gap, original_ack, original_new_offset = Consumer._add_gap, Consumer.ack, Consumer._new_offset

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if tp.topic in _FIX["own_topics"]:
            _FIX["on_gap"](tp, offset_from, offset_to, f"Faust's view: {consumer_view(self, tp)}")
            raise RuntimeError(f"records {offset_from}..{offset_to - 1} of {tp} were skipped")  # on_gap must stop us first
        if tp.topic in _FIX["stage_topics"]:
            try:
                held = await _FIX["records_in"](tp, offset_from, offset_to)
            except Exception as exc:  # noqa: BLE001 - unchecked, the gap must not be committed either
                held, why = None, f"they could not be checked for records ({exc})"
            else:
                shown = ", ".join(f"@{offset}" for offset in held[:10]) + (" …" if len(held) > 10 else "")
                why = f"the broker holds {len(held)} record(s) there: {shown}"
            if held or held is None:
                _FIX["on_gap"](tp, offset_from, offset_to, f"{why}; Faust's view: {consumer_view(self, tp)}")
                raise RuntimeError(f"records {offset_from}..{offset_to - 1} of {tp} were skipped")
            _FIX["on_input_gap"](tp, offset_from, offset_to)
        await original_add_gap(self, tp, offset_from, offset_to)

    def ack(self, message) -> bool:
        if message.topic in _FIX["stage_topics"]:
            tp, offset = message.tp, message.offset
            pending = _HANDED.get((tp, offset))
            if not pending:
                committed = self._committed_offset[tp]
                if committed is None or offset >= committed:  # below it: a repeat, already handled
                    _DROPPED.setdefault(tp, set()).add(offset)
                _FIX["on_dropped"](tp, offset)
                return False  # dropped unread: leave it unacknowledged
            if pending == 1:
                del _HANDED[tp, offset]
            else:
                _HANDED[tp, offset] = pending - 1
            dropped = _DROPPED.get(tp)
            if dropped:
                dropped.discard(offset)
        return original_ack(self, message)

    def _new_offset(self, tp):
        dropped = _DROPPED.get(tp)
        if dropped:
            committed = self._committed_offset[tp]
            if committed is not None:  # another owner may have read it and committed past it
                dropped.difference_update([offset for offset in dropped if offset < committed])
            if dropped:
                return None  # nothing past a record dropped unread until it has been read again
        if tp.topic in _FIX["own_topics"]:
            acked, committed = self._acked[tp], self._committed_offset[tp]
            if acked and committed is not None and min(acked) > committed:
                return None  # the record at the committed offset is not acknowledged yet
            held = _HELD.get(tp)
            if held and acked and min(acked) > min(held):
                return None  # a held record comes first: Faust's run of acknowledged offsets would pass it
        return original_new_offset(self, tp)

    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer.ack = ack  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _FIX["installed"] = True
