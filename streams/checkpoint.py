"""How a stage's batch is committed: the one place that says in what order, and what a failure does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from typing import Any, Callable

from streams.metrics import METRICS
from streams.stage_outputs import StageOutputs
from streams.stages import StageBatch, short_error
from streams.state import compact_json
from streams.topics import REJECTIONS_TOPIC

log = logging.getLogger("streams")

#: exit status of a worker that stopped because the ledger refused a record
LEDGER_REFUSED_EXIT = 70
#: exit status of a worker whose intake or decide batch raised (nothing of the batch acknowledged)
STAGE_FAILED_EXIT = 71
#: who the ledger's chain names as booking the payment-status messages the workers read
PIPELINE_ACTOR = "pipeline"
#: how long a stopping worker lets a batch's records reach the broker before exiting unacknowledged
STOPPING_DELIVERY_SECONDS = 60.0


def exit_now(code: int) -> None:
    """Exit at once, without Faust's shutdown (which would acknowledge the batch in hand),
    after the log says why."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - a broken log handler must not keep the worker alive
            pass
    os._exit(code)


class Checkpoint:
    """Commits a stage's batch (streams/stages.py ``StageBatch``) in this order, and no other:

    1. **queued**: the stage took the whole batch in one synchronous call, so every output of
       every record in it is in ``batch.outputs`` (a batch is queued whole or not at all);
    2. **delivered and booked**, both awaited, run side by side:
       * delivered: the broker acknowledged every record of ``batch.outputs``
         (streams/stage_outputs.py ``deliver``). As each state changelog record is
         acknowledged, its claim's writes are stored with its offset (``TxnTable``'s
         ``on_delivered``: RocksDB in one atomic batch; the memory store records the offset),
         so the state is flushed here, never ahead of its changelog;
       * booked: the ledger transaction holding the batch's decisions, instructions,
         rejections and payee-exclusions listings committed (a batch with none of them books nothing),
         then the payee-accounts and payment-status messages' (each idempotent);
       * then, once booked, delivered: the rejections of the payment-status messages the ledger
         refused (an unknown EndToEndId, an amount or a state change that does not fit), which
         only the ledger can judge;
    3. **acknowledged**: :meth:`commit` returns, and only then does the adapter's loop let
       Faust's ``take_events`` acknowledge the batch's events;
    4. **offsets committed**: Faust commits offsets up to acknowledged events only, at its
       commit interval.

    So an input's offset is committed only after the broker holds its outputs and the ledger
    holds its records: a worker killed at any moment is redelivered the batch, and the
    redelivery writes the same ids (the ledger stores an id once). Every failure before step 3
    exits the process unacknowledged (:func:`exit_now`): a broker that does not take the records
    (STAGE_FAILED_EXIT), a record the ledger refuses (LedgerConflict, CapOverrun, InvalidRecord:
    LEDGER_REFUSED_EXIT; the money path halts rather than guesses). An unreachable database is
    retried until it answers, the batch unacknowledged meanwhile. A worker stopping mid-commit
    waits for the delivery (up to STOPPING_DELIVERY_SECONDS) and the ledger transaction, or exits
    unacknowledged.

    The claims topic is keyed by clause, so the ledger sees each clause's effects in decision
    order (a payment before its clawback); the public output topics, keyed by payee, would not
    give it that order."""

    def __init__(self, producer: Callable[[], Any], ledger_url: str | None, timezone: str):
        self._producer = producer  # the AIOKafkaProducer under Faust's (record batches are its API)
        self._ledger_url = ledger_url
        self._timezone = timezone
        self._ledger: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def open(self) -> None:
        """Open the ledger (in its thread) before the first batch."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_ledger)

    async def commit(self, stage: str, batch: StageBatch) -> None:
        """Steps 2 and 3 of the class's order for one batch of ``stage``."""
        if batch.to_book():
            await asyncio.gather(self._deliver(stage, batch.outputs), self._book(batch))
            if batch.refused_statuses:
                await self._deliver(stage, self._refused_statuses(batch))
        elif batch.outputs:
            await self._deliver(stage, batch.outputs)

    def _open_ledger(self) -> Any:
        from sinks.ledger import DEFAULT_LEDGER_URL, Ledger

        if self._ledger is None:
            self._ledger = Ledger.open(self._ledger_url or DEFAULT_LEDGER_URL, timezone=self._timezone)
        return self._ledger

    async def sign_due(self, schedule: Any) -> Any:
        """The ledger's head signed when ``schedule`` (sinks/ledger/checkpoints.py) says a checkpoint
        is due, else None; read in the ledger's thread, after the batch being booked."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: schedule.due(self._open_ledger(), time.monotonic()))

    async def _deliver(self, stage: str, outputs: StageOutputs) -> None:
        """Return once the broker holds every record of the batch; otherwise exit, acknowledging
        nothing: the batch is read again, its ids unchanged."""
        delivery = asyncio.ensure_future(outputs.deliver(self._producer()))
        try:
            await asyncio.shield(delivery)
        except asyncio.CancelledError:
            # The worker is stopping, and take_events() acknowledges the batch as soon as this
            # returns: let the records reach the broker first, or exit unacknowledged.
            try:
                await asyncio.wait_for(delivery, STOPPING_DELIVERY_SECONDS)
            except BaseException as exc:  # noqa: BLE001
                log.critical("%s: the batch's records were not delivered during shutdown (%s); exiting without "
                             "acknowledging the batch", stage, short_error(exc))
                exit_now(STAGE_FAILED_EXIT)
            raise
        except Exception as exc:  # noqa: BLE001
            log.critical("%s: the broker did not take the batch's records (%s); exiting without acknowledging "
                         "the batch, so that a restarted worker reads it again", stage, short_error(exc))
            exit_now(STAGE_FAILED_EXIT)

    def _record(self, batch: StageBatch) -> Any:
        from sinks.ledger import LedgerUnavailable

        ledger = self._open_ledger()
        delay = 0.5
        while True:
            try:
                result = ledger.record(batch.decisions, batch.instructions, batch.rejections, batch.listings)
                if batch.accounts:  # a transaction of its own: both are idempotent, and the batch is acknowledged after both
                    ledger.import_payee_accounts(batch.accounts)
                if batch.statuses:  # so is this one, which gives the same rejections again on a redelivery
                    batch.refused_statuses = ledger.book_statuses(batch.statuses, PIPELINE_ACTOR).rejections
                return result
            except LedgerUnavailable as exc:
                # Nothing of the batch was written and the batch is idempotent: wait for the
                # database however long it takes; the events stay unacknowledged meanwhile.
                log.warning("ledger unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    @staticmethod
    def _refused_statuses(batch: StageBatch) -> StageOutputs:
        """The rejections of the payment-status messages the ledger refused, counted, keyed as their inputs."""
        key_of = {status.rejection_id: status.key for status in batch.statuses}
        outputs = StageOutputs()
        for rejection in batch.refused_statuses:
            outputs.put(REJECTIONS_TOPIC, key_of[rejection["rejection_id"]], compact_json(rejection))
            METRICS.rejections.inc(rejection["code"])
        return outputs

    async def _book(self, batch: StageBatch) -> None:
        """One ledger transaction for the batch, in the ledger's thread. Raising here would let
        take_events() acknowledge the batch, so a refused record exits on the spot; a worker
        cancelled while the transaction runs blocks until it has finished, and exits
        unacknowledged if it did not commit."""
        future = self._executor.submit(self._record, batch)
        try:
            result = await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            try:
                future.result()  # block: the loop is stopping anyway
            except BaseException as exc:  # noqa: BLE001
                log.critical("ledger batch did not commit during shutdown (%s); exiting without acknowledging it", exc)
                exit_now(LEDGER_REFUSED_EXIT)
            raise
        except Exception as exc:  # a refused record (LedgerError) or any other failure of the money path
            log.critical(
                "LEDGER REFUSED A RECORD, STOPPING THIS WORKER WITHOUT COMMITTING: %s. "
                "The stream produced something the ledger will not book (a conflicting id or a cap overrun). "
                "Nothing after this batch is acknowledged; investigate before restarting.", exc,
            )
            exit_now(LEDGER_REFUSED_EXIT)
            raise
        now = time.time()
        with METRICS.lock:
            METRICS.ledger_batches.inc()
            for kind in ("decision", "instruction", "rejection"):
                METRICS.ledger_new.inc(kind, by=getattr(result, f"new_{kind}s"))
                METRICS.ledger_present.inc(kind, by=getattr(result, f"present_{kind}s"))
            for i in batch.fresh_instructions:
                METRICS.granted.inc(i.clause_id, by=i.amount)
            for ts in batch.stamps:
                METRICS.latency.observe(max(0.0, now - ts))
