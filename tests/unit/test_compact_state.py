"""rules/compact_state.py: a mapping like a dict, whose claim entries are kept pickled."""

from __future__ import annotations

from rules.compact_state import CompactState
from rules.engine import claim_key, state_key


def test_it_reads_back_what_was_written_and_is_a_mapping():
    state = CompactState()
    claim, cap = claim_key("compute-voucher", "scc-billing", "E-1"), state_key("cap", "compute-voucher", "programme-year", "2026")
    record = {"fingerprint": "f", "decision": {"computation": {"caps": [{"cap": "c"}]}}, "charged": [[cap, 1, None]], "rate": (3, 5)}
    state[claim] = record
    state[cap] = {"amount": 5, "count": 1}
    assert state[claim] == record and state.get(claim) is not record  # a copy: the engine never changes a value in place
    assert state.get("absent") is None and state.get(cap) == {"amount": 5, "count": 1}
    assert dict(state) == {cap: {"amount": 5, "count": 1}, claim: record} and len(state) == 2
    del state[claim]
    assert claim not in state and len(state) == 1
