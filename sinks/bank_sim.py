"""A bank that answers a pain.001 (``subsidy bank-sim``): a pain.002 status report (ACCP, or RJCT
with a reason), a camt.054 notification of the day's bookings (each accepted transfer settled,
DBIT; the returned ones credited back, CRDT with RtrInf) and the day's camt.053 statement.

Pure and deterministic: the same file, rates and seed give the same answers. Of n transfers,
round(rate × n) are rejected and round(rate × n) returned (at least one each when the rate is
above zero and there is a transfer to spare), chosen by a random generator seeded with the seed
and the pain.001's MsgId.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sinks.iso20022_answers import camt053, camt054, pain002, read_pain001

#: ISO 20022 reasons a bank gives: AC01 incorrect account number, AC04 closed account, AC06 blocked account
REASONS = ("AC01", "AC04", "AC06")


@dataclass(frozen=True, slots=True)
class BankFiles:
    message_id: str  # the pain.001's
    pain002: bytes
    camt054: bytes
    camt053: bytes
    rejected: int
    returned: int
    settled: int


def _how_many(rate: float, n: int) -> int:
    return 0 if rate <= 0 or n == 0 else max(1, round(rate * n))


def answer(pain001: bytes, *, reject_rate: float, return_rate: float, seed: int, day: str | None = None, opening_fen: int = 0) -> BankFiles:
    """The bank's files for ``pain001``, booked on ``day`` (YYYY-MM-DD; default its requested execution date)."""
    payment_file = read_pain001(pain001)
    message_id, transfers = payment_file.message_id, payment_file.transfers
    day = day or payment_file.execution_date
    rng = random.Random(f"{seed}:{message_id}")
    order = list(range(len(transfers)))
    rng.shuffle(order)
    rejects = _how_many(reject_rate, len(transfers))
    returns = min(_how_many(return_rate, len(transfers)), len(transfers) - rejects)
    rejected = {i: rng.choice(REASONS) for i in order[:rejects]}
    returned = {i: rng.choice(REASONS) for i in order[rejects : rejects + returns]}
    created = f"{day}T18:00:00+08:00"
    base = message_id[:30]
    statuses = [(t.end_to_end_id, "RJCT" if i in rejected else "ACCP", rejected.get(i), t.amount_fen) for i, t in enumerate(transfers)]
    bookings: list[tuple[str, int, str, str | None]] = []
    for i, t in enumerate(transfers):
        if i not in rejected:
            bookings.append((t.end_to_end_id, t.amount_fen, day, None))
    bookings += [(transfers[i].end_to_end_id, transfers[i].amount_fen, day, reason) for i, reason in sorted(returned.items())]
    account = payment_file.debtor_account
    return BankFiles(message_id, pain002(f"{base}-STS", created, message_id, statuses), camt054(f"{base}-NTF", created, account, bookings),
                     camt053(f"{base}-STM", created, account, day, opening_fen, bookings), len(rejected), len(returned),
                     len(transfers) - len(rejected))
