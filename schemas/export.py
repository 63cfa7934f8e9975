"""Publish the wire contract (v1, and v1.1's payee-exclusions) as JSON Schema, generated from the pydantic models.

    python -m schemas.export [--out DIR] [--examples]

writes one draft 2020-12 schema per topic into ``schemas/jsonschema/`` (or DIR).
``--examples`` also rewrites the output examples in ``schemas/examples/`` by running the
real core (``rules.intake`` + ``rules.engine``) on the input examples; the input examples
are written by hand. ``tests/unit/test_contract.py`` fails when a committed file differs
from what this module generates.

What the generator adds to pydantic's output, and why:

* ``$schema``, ``$id``, ``title`` and a ``description`` quoting the contract line of the topic;
* ``pattern`` on every ``format: date-time`` string: in 2020-12 ``format`` is only an
  annotation, and the contract requires the offset;
* for inputs, ``source`` lists the topic's allow-list of the shipped policy as ``examples``
  (the list is policy data an operator may change, so intake, not the schema, enforces it),
  and ``award`` gets an ``enum`` of the award clause ids of the shipped policy;
* for outputs, the ``if``/``then`` forms of the cross-field rules (``json_schema_rules``).

Not expressible in JSON Schema, enforced by intake only: USCC / resident-ID check
characters, the sign of an amount (negative only for a refund or credit note), the 10^15
yuan bound, and that ``1234.0`` is a fractional JSON number (JSON Schema calls it an integer).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rules.policy import Policy, load_policy
from schemas.inputs import (
    EXCLUSIONS_TOPIC,
    INPUT_TOPICS,
    MODEL_BY_TOPIC,
    PAYEE_ACCOUNTS_TOPIC,
    PAYMENT_STATUS_TOPIC,
    PAYMENT_VOIDS_TOPIC,
    PayeeAccount,
    PayeeExclusion,
    PaymentStatus,
    PaymentVoid,
)
from schemas.outputs import OUTPUT_MODELS, RFC3339_PATTERN, rejection_record

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE / "jsonschema"
EXAMPLES_DIR = HERE / "examples"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_URI = "https://chengdu-ai-subsidy.example/schemas/v1/"

#: v1.1 inputs that are not claims: intake reads them for the ledger (payee-exclusions:
#: rules/exclusions.py; payee-accounts: rules/payee_accounts.py, the ledger's payments; payment-status,
#: the bank's answers: rules/payment_status.py, booked as `subsidy payments ingest` books a file's,
#: sinks/ledger/bank_answers.py)
OTHER_INPUT_MODELS: dict[str, type[BaseModel]] = {EXCLUSIONS_TOPIC: PayeeExclusion, PAYEE_ACCOUNTS_TOPIC: PayeeAccount, PAYMENT_STATUS_TOPIC: PaymentStatus}
#: inputs of ours, in no version of the contract: an operator's void of a payment (rules/intake.py void_claim)
OWN_INPUT_MODELS: dict[str, type[BaseModel]] = {PAYMENT_VOIDS_TOPIC: PaymentVoid}
TOPICS: tuple[str, ...] = INPUT_TOPICS + tuple(OTHER_INPUT_MODELS) + tuple(OWN_INPUT_MODELS) + tuple(OUTPUT_MODELS)
MODELS: dict[str, type[BaseModel]] = {**MODEL_BY_TOPIC, **OTHER_INPUT_MODELS, **OWN_INPUT_MODELS, **OUTPUT_MODELS}

#: the lines of /work/shared/contract.md (v1, and v1.1's "Sizes") each schema quotes, verbatim
CONTRACT_LINES: dict[str, tuple[str, ...]] = {
    "compute-purchases": (
        "| `compute-purchases` | compute providers' billing systems | one paid compute purchase (or a refund of one) |",
        "- `compute-purchases`: `provider` `{uscc, name}`, `invoice_no`, `amount`, optional `refund_of` "
        "(the `event_id` of the purchase it refunds; then `amount` is the refunded sum).",
    ),
    "model-invoices": (
        "| `model-invoices` | model vendors' billing systems | one paid invoice for large-model use (or a credit note) |",
        "- `model-invoices`: `vendor` `{uscc, name}`, `invoice_no`, `amount`, `billing_period` "
        "(\"2026-03\"), optional `credit_of` (like `refund_of`).",
    ),
    "investment-closings": (
        "| `investment-closings` | the investment registry | money actually received in an angel / VC / PE round |",
        "- `investment-closings`: `round` (`angel` | `vc` | `pe`), `amount` received, `investors` "
        "(list of names), `agreement_no`.",
    ),
    "award-announcements": (
        "| `award-announcements` | the government review system | one approved item of a published list (公示名單) |",
        "- `award-announcements`: `award` (a clause id: `green-datacenter`, `benchmark-scenario`, "
        "`wu-wenjun-award`, `theory-breakthrough`, `exhibition`, `hit-product`, `ranking`, "
        "`typical-case`), `approval_ref` (the approval document number), `subject` (what is "
        "awarded, unique per award: the data centre, the scenario, the product, the list, the "
        "exhibition…), optional `grade` (for graded awards), optional `base_amount` (verified "
        "investment or cost, for awards paid as a share of one).",
    ),
    EXCLUSIONS_TOPIC: (
        "**`payee-exclusions`** (input, published by the credit system; key = payee id): `event_id`, "
        "`source`, `occurred_at`, `beneficiary`, `list` (e.g. `dishonest-judgment-debtor` 失信被执行人, "
        "`debarred`), `from` (date), optional `to` (date), `reference` (the listing's document number).",
        "A payee excluded on a payment's date is not paid: its instructions are held, with the listing "
        "named, and released when the exclusion ends.",
    ),
    PAYEE_ACCOUNTS_TOPIC: (
        "**`payee-accounts`** (input, published by the enterprise registry / bank-account verification "
        "service; key = payee id): `event_id`, `source`, `occurred_at`, `beneficiary` (as above), "
        "`account_name`, `account_number` (digits, 8–32), `bank_code` (the bank's 12-digit CNAPS "
        "participant code), `verified_at`, optional `revoked` (true: the account may no longer be paid).",
        "The newest verified, unrevoked account of a payee is the one paid.",
    ),
    PAYMENT_STATUS_TOPIC: (
        "**`payment-status`** (input, published by the treasury / bank connector, or imported from",
        "ISO 20022 pain.002 and camt.054 files): `event_id`, `source`, `occurred_at`, `end_to_end_id`",
        "(the id carried in pain.001), `status` (`accepted` | `rejected` | `settled` | `returned`),",
        "`reason_code` (ISO 20022 status/return reason, e.g. AC04 closed account), optional `amount`.",
    ),
    "disbursement-instructions": (
        "| `disbursement-instructions` | finance systems | one payment to make |",
        "A clawback (after a refund or credit note) is an instruction with a negative amount that "
        "names the instruction it corrects.",
    ),
    "subsidy-decisions": (
        "| `subsidy-decisions` | operators, audit | the outcome of every claim: granted, partly granted, declined, with the reason |",
    ),
    "subsidy-rejections": (
        "| `subsidy-rejections` | operators | an input that could not be accepted: the original bytes, topic, partition, offset and a reason a person can act on |",
        "a rejection carries at most the first 64 KiB of the original, with the original's length and SHA-256.",
    ),
}
_COMMON_INPUT = (
    "Every message: JSON object, UTF-8, Kafka key = the payee's identifier (USCC for an "
    "enterprise). Amounts are decimal strings in CNY with at most 2 fractional digits "
    "(\"1234.50\"); an integer JSON number is accepted, a fractional JSON number is rejected "
    "(floats are not money). Timestamps are RFC 3339 with an offset."
)
_TITLES = {
    "compute-purchases": "A paid compute purchase, or a refund of one",
    "model-invoices": "A paid invoice for large-model use, or a credit note",
    "investment-closings": "Money received in an angel / VC / PE round",
    "award-announcements": "One approved item of a published award list",
    EXCLUSIONS_TOPIC: "A payee listed by the credit system, whose payments are held",
    PAYEE_ACCOUNTS_TOPIC: "A payee's verified bank account, or its revocation",
    PAYMENT_STATUS_TOPIC: "A bank's answer about one payment: accepted, rejected, settled or returned",
    PAYMENT_VOIDS_TOPIC: "An operator's void of a payment that has not reached its payee",
    "disbursement-instructions": "A payment (or clawback) for finance to make",
    "subsidy-decisions": "The outcome of one claim under one clause",
    "subsidy-rejections": "An input that could not be accepted",
}


def _add_timestamp_patterns(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "date-time" and "pattern" not in node:
            node["pattern"] = RFC3339_PATTERN
        for value in node.values():
            _add_timestamp_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _add_timestamp_patterns(value)


def topic_schema(topic: str, policy: Policy | None = None) -> dict[str, Any]:
    """The JSON Schema of one topic's messages."""
    policy = policy or load_policy()
    model = MODELS[topic]
    generated = model.model_json_schema(mode="validation")
    generated.pop("title", None)
    model_doc = generated.pop("description", None)
    _add_timestamp_patterns(generated)
    if topic in OWN_INPUT_MODELS:
        description = f"Topic `{topic}`: the pipeline's own input, in no version of the wire contract."
    else:
        quote = "\n".join(f"> {line}" for line in CONTRACT_LINES[topic])
        description = f"Topic `{topic}`, wire contract {'v1.1' if topic in OTHER_INPUT_MODELS else 'v1'}:\n\n{quote}"
    if topic in MODEL_BY_TOPIC or topic in (EXCLUSIONS_TOPIC, PAYEE_ACCOUNTS_TOPIC):  # payment-status is keyed by EndToEndId, names no payee
        description += f"\n\n> {_COMMON_INPUT}"
        props = generated["properties"]
        if topic in policy.sources:
            props["source"]["examples"] = sorted(policy.sources[topic])
            props["source"]["description"] = "the publishing system; intake refuses a source not on the topic's allow-list in the policy"
        if topic == "award-announcements":
            props["award"]["enum"] = list(policy.awards)
            props["award"]["description"] = f"an award clause id of policy {policy.policy_id} {policy.version}"
    elif model_doc:
        description += "\n\n" + " ".join(model_doc.split())
    rules = getattr(model, "json_schema_rules", None)
    if rules:
        generated.update(copy.deepcopy(rules))
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_URI}{topic}.json",
        "title": f"{topic}: {_TITLES[topic]}",
        "description": description,
        **generated,
    }


def render(document: Any) -> str:
    """The committed text of a schema or example: stable, UTF-8, one trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def all_schemas(policy: Policy | None = None) -> dict[str, str]:
    """File name -> text of every topic's schema."""
    policy = policy or load_policy()
    return {f"{topic}.json": render(topic_schema(topic, policy)) for topic in TOPICS}


# --- output examples, produced by the real core ----------------------------------------

#: where the example rejection was read from (a Kafka partition and offset) and when
EXAMPLE_REJECTION_PLACE: dict[str, Any] = {"partition": 3, "offset": 1042}
EXAMPLE_REJECTED_AT = dt.datetime(2026, 3, 2, 10, 15, 4, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def load_example(topic: str, directory: Path = EXAMPLES_DIR) -> Any:
    return json.loads((directory / f"{topic}.json").read_text(encoding="utf-8"))


def example_rejection_input(directory: Path = EXAMPLES_DIR) -> bytes:
    """The compute-purchases example with its amount sent as a float: a typical rejection."""
    message = load_example("compute-purchases", directory)
    whole = int(message["amount"].split(".")[0])
    message["amount"] = whole + 0.5
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def output_examples(policy: Policy | None = None, directory: Path = EXAMPLES_DIR) -> dict[str, Any]:
    """The decision and instruction the core makes of the compute-purchases example (on an
    empty state), and the rejection record of ``example_rejection_input``."""
    from rules.engine import Engine  # the core; imported here so schema export does not need it
    from rules.intake import Rejected, intake

    policy = policy or load_policy()
    topic = "compute-purchases"
    raw = (directory / f"{topic}.json").read_bytes()
    engine = Engine(policy, {})
    decisions, instructions = [], []
    for claim in intake(topic, raw, policy):
        outcome = engine.decide(claim)
        if outcome.rejection:
            raise RuntimeError(f"the {topic} example is rejected by the engine: {outcome.rejection}")
        decisions += [decision.to_wire() for decision in outcome.decisions]
        instructions += [instruction.to_wire() for instruction in outcome.instructions]
    if len(decisions) != 1 or len(instructions) != 1:
        raise RuntimeError(f"the {topic} example should make one paid decision, got {decisions}")
    bad = example_rejection_input(directory)
    try:
        intake(topic, bad, policy)
    except Rejected as exc:
        code, reason = exc.code, exc.reason
    else:
        raise RuntimeError("the example rejection input was accepted")
    key = load_example(topic, directory)["beneficiary"]["uscc"].encode()
    rejection = rejection_record(topic, key=key, raw=bad, code=code, reason=reason, rejected_at=EXAMPLE_REJECTED_AT, **EXAMPLE_REJECTION_PLACE)
    return {"subsidy-decisions": decisions[0], "disbursement-instructions": instructions[0], "subsidy-rejections": rejection}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help=f"directory for the schemas (default {SCHEMA_DIR})")
    parser.add_argument("--examples", action="store_true", help=f"also rewrite the output examples in {EXAMPLES_DIR} from the core")
    args = parser.parse_args(argv)
    policy = load_policy()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in all_schemas(policy).items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(args.out / name)
    if args.examples:
        for topic, document in output_examples(policy).items():
            path = EXAMPLES_DIR / f"{topic}.json"
            path.write_text(render(document), encoding="utf-8")
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
