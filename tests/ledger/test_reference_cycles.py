"""A worker books a batch every fraction of a second and collects reference cycles only once a
minute (subsidy/runtime.py): booking must not leave SQLAlchemy expressions in cycles."""

from __future__ import annotations

import gc

from sqlalchemy.sql.elements import ClauseElement

from sinks.ledger import Ledger
from tests.ledger.factory import TIMEZONE, purchase, run


def expressions_left_in_cycles(book) -> list[str]:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage to be looked at
    try:
        book()
        gc.collect()
        return sorted({type(o).__name__ for o in gc.garbage if isinstance(o, ClauseElement)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_booking_a_batch_leaves_no_expression_in_cycles(ledger_url):
    state: dict = {}
    first = run([purchase(f"a{n}", n % 3 + 1, "1000.00") for n in range(6)], state)
    # the same buyers again, so the caps are updated, not inserted; a refund books a clawback
    second = run([purchase(f"b{n}", n % 3 + 1, "1000.00") for n in range(6)] + [purchase("r0", 1, "400.00", refund_of="a0")], state)
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(first.decisions, first.instructions, [])  # caches warmed, caps created
        assert expressions_left_in_cycles(lambda: ledger.record(second.decisions, second.instructions, [])) == []
        assert ledger.verify_chain() == []
