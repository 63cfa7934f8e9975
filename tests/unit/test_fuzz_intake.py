"""Fuzzing every input topic's decoder: whatever arrives ends in claims or a rejection.

The worker never stops on a message: ``intake`` either returns claims that the engine can
decide, or raises ``Rejected`` with a code and a reason. Any other exception is a bug.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parties import complete_uscc
from rules.engine import Engine
from rules.identifiers import USCC_ALPHABET
from rules.intake import Rejected, intake
from rules.policy import load_policy
from schemas.inputs import INPUT_TOPICS, MODEL_BY_TOPIC

POLICY = load_policy()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


usccs = st.one_of(
    st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17).map(complete_uscc),  # valid
    st.text(alphabet=USCC_ALPHABET, min_size=18, max_size=18),  # mostly a wrong check character
    st.text(max_size=20),
)
amounts = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 4).flatmap(lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)).map(str),
    st.text(max_size=12),
)
dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "+08:00"),
    st.datetimes().map(lambda d: d.isoformat()),  # no offset
    st.text(max_size=30),
    st.sampled_from(["2026-02-30T10:00:00+08:00", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59+14:00"]),
)


VALID = {
    "event_id": "evt-1",
    "source": {"compute-purchases": "scc-billing", "model-invoices": "model-vendor-billing",
               "investment-closings": "investment-registry", "award-announcements": "gov-review-system"},
    "occurred_at": "2026-03-01T10:00:00+08:00",
    "beneficiary": {"uscc": "91110000600037341L", "name": "成都某智能科技有限公司"},
    "provider": {"uscc": "91110108551385082Q", "name": "p"},
    "vendor": {"uscc": "91110108551385082Q", "name": "v"},
    "invoice_no": "INV-1",
    "amount": "1234.50",
    "billing_period": "2026-03",
    "round": "vc",
    "investors": ["某资本"],
    "agreement_no": "A-1",
    "award": "typical-case",
    "approval_ref": "成经信〔2026〕1号",
    "subject": "某典型案例",
    "base_amount": "100000.00",
}
HOSTILE = {
    "event_id": st.text(max_size=140),
    "source": st.text(max_size=20),
    "occurred_at": dates,
    "beneficiary": st.one_of(
        st.fixed_dictionaries({"uscc": usccs, "name": st.text(max_size=10)}),
        st.fixed_dictionaries({"person_id": st.text(max_size=19), "name": st.text(max_size=10)}),
        st.fixed_dictionaries({"team_ref": st.text(max_size=10), "name": st.text(max_size=10)}),
        json_values,
    ),
    "provider": st.fixed_dictionaries({"uscc": usccs, "name": st.text(max_size=5)}),
    "vendor": st.fixed_dictionaries({"uscc": usccs, "name": st.text(max_size=5)}),
    "amount": amounts,
    "billing_period": st.text(max_size=8),
    "round": st.text(max_size=6),
    "investors": json_values,
    "award": st.sampled_from(POLICY.awards + ["unknown-award", ""]),
    "subject": st.text(max_size=20),
    "base_amount": amounts,
}


@st.composite
def near_valid_messages(draw, topic):
    """A valid message of ``topic`` with a few fields replaced by hostile values, dropped, or added."""
    fields = MODEL_BY_TOPIC[topic].model_fields
    message = {k: (v[topic] if isinstance(v, dict) and topic in v else v) for k, v in VALID.items() if k in fields}
    for name in draw(st.sets(st.sampled_from(sorted(set(HOSTILE) & set(fields))), max_size=2)):
        message[name] = draw(HOSTILE[name])
    for name in draw(st.sets(st.sampled_from(sorted(message)), max_size=1)):
        del message[name]
    if draw(st.booleans()) and "refund_of" in fields:
        message["refund_of"] = draw(st.text(max_size=5))
    return message


def _must_end_cleanly(topic: str, raw: bytes) -> None:
    try:
        claims = intake(topic, raw, POLICY)
    except Rejected as rejected:
        assert rejected.code and rejected.reason
        event("rejected: " + rejected.code)
        return
    event("accepted")
    engine = Engine(POLICY, {})
    for claim in claims:
        outcome = engine.decide(claim)
        assert (outcome.rejection is None) == bool(outcome.decisions)


@FUZZ
@given(topic=st.sampled_from(INPUT_TOPICS), raw=st.binary(max_size=300))
def test_random_bytes_are_rejected_not_fatal(topic, raw):
    _must_end_cleanly(topic, raw)


@FUZZ
@given(topic=st.sampled_from(INPUT_TOPICS), value=json_values)
def test_random_json_is_rejected_not_fatal(topic, value):
    _must_end_cleanly(topic, json.dumps(value).encode())


@FUZZ
@given(data=st.data(), topic=st.sampled_from(INPUT_TOPICS))
def test_near_valid_messages_end_in_a_decision_or_a_rejection(data, topic):
    message = data.draw(near_valid_messages(topic))
    _must_end_cleanly(topic, json.dumps(message, ensure_ascii=False).encode())


def test_deeply_nested_json_is_rejected():
    with pytest.raises(Rejected, match="nests too deeply"):
        intake("compute-purchases", b"[" * 100_000 + b"]" * 100_000, POLICY)
