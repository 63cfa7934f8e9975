"""Finance exports of the ledger's instructions: CSV and ISO 20022 pain.001.001.09.

Both carry control totals (number of transactions, control sum) and a deterministic batch id
(a digest of the exported instruction ids and the date range), and use the instruction id as
the end-to-end id. The pain.001 document is generated from the shipped ISO 20022 XSD
(``sinks/xsd/pain.001.001.09.xsd``) with ``xmlschema``, which validates while it encodes;
the result is validated again as text before it is returned.

pain.001 is a credit transfer initiation: it carries the payments only. Clawbacks (negative
amounts) are money to recover, not to send; they are in the CSV export with their sign.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from rules.money import format_fen, parse_amount

PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN001_XSD = Path(__file__).with_name("xsd") / "pain.001.001.09.xsd"

DEFAULT_DEBTOR_NAME = "成都市经济和信息化局 (AI industry policy budget)"
DEFAULT_DEBTOR_ACCOUNT = "CHENGDU-AI-SUBSIDY-BUDGET"

CSV_COLUMNS = [
    "record_type",
    "batch_id",
    "end_to_end_id",
    "kind",
    "value_date",
    "payee_id",
    "payee_kind",
    "payee_name",
    "amount",
    "currency",
    "policy_id",
    "policy_version",
    "clause_id",
    "fiscal_year",
    "corrects",
    "event_ids",
]


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    instructions: list[dict]
    number_of_transactions: int
    control_sum_fen: int

    @property
    def control_sum(self) -> str:
        return format_fen(self.control_sum_fen)


def batch_id(kind: str, instruction_ids: list[str], date_from: str | None, date_to: str | None) -> str:
    """Deterministic, at most 35 characters (pain.001 MsgId): same instructions and range, same id."""
    digest = hashlib.sha256("\x1f".join([kind, date_from or "", date_to or "", *sorted(instruction_ids)]).encode()).hexdigest()
    return f"SUBS-{digest[:30]}"


def make_batch(kind: str, instructions: list[dict], date_from: str | None, date_to: str | None) -> Batch:
    return Batch(
        batch_id=batch_id(kind, [i["instruction_id"] for i in instructions], date_from, date_to),
        instructions=instructions,
        number_of_transactions=len(instructions),
        control_sum_fen=sum(parse_amount(i["amount"]) for i in instructions),
    )


def _value_date(instruction: dict) -> str:
    from sinks.ledger.booking import _value_date as value_date

    return value_date(instruction["occurred_at"])


def to_csv(batch: Batch) -> str:
    """Detail rows ("D") in journal order, then one trailer row ("T") with the control totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in batch.instructions:
        payee = i["payee"]
        writer.writerow(
            [
                "D",
                batch.batch_id,
                i["instruction_id"],
                i["kind"],
                _value_date(i),
                payee["id"],
                payee.get("kind", ""),
                payee.get("name", ""),
                format_fen(parse_amount(i["amount"])),
                i["currency"],
                i["policy_id"],
                i["policy_version"],
                i["clause_id"],
                i["fiscal_year"],
                i.get("corrects") or "",
                " ".join(i.get("event_ids") or []),
            ]
        )
    trailer = ["T", batch.batch_id, "", f"transactions={batch.number_of_transactions}", "", "", "", "", batch.control_sum, "CNY", "", "", "", "", "", ""]
    writer.writerow(trailer)
    return out.getvalue()


@lru_cache(maxsize=1)
def pain001_schema():
    import xmlschema

    return xmlschema.XMLSchema(str(PAIN001_XSD))


def _party(payee: dict) -> dict:
    other = {"Id": payee["id"][:35], "SchmeNm": {"Prtry": "USCC" if payee.get("kind") == "enterprise" else (payee.get("kind") or "ID").upper()[:35]}}
    identity = {"OrgId": {"Othr": [other]}} if payee.get("kind") == "enterprise" else {"PrvtId": {"Othr": [other]}}
    return {"Nm": (payee.get("name") or payee["id"])[:140], "Id": identity}


def _remittance(i: dict) -> str:
    text = f"{i['policy_id']} {i['clause_id']} FY{i['fiscal_year']} events {' '.join(i.get('event_ids') or [])}"
    return text[:140]


def to_pain001(
    batch: Batch,
    *,
    created_at: str | None = None,
    execution_date: str | None = None,
    debtor_name: str = DEFAULT_DEBTOR_NAME,
    debtor_account: str = DEFAULT_DEBTOR_ACCOUNT,
) -> bytes:
    """A pain.001.001.09 document for the batch's payments; one PmtInf per budget (clause, fiscal year)."""
    payments = [i for i in batch.instructions if i["kind"] == "payment"]
    if len(payments) != len(batch.instructions):
        raise ValueError("pain.001 carries payments only; build the batch from kind='payment' instructions")
    if not payments:
        raise ValueError("no payments in the range: pain.001 needs at least one transaction")
    created_at = created_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    execution_date = execution_date or dt.date.today().isoformat()

    def budget_key(i: dict) -> tuple:
        return (i["policy_id"], i["clause_id"], int(i["fiscal_year"]))

    groups = []
    for (policy_id, clause_id, year), group in groupby(sorted(payments, key=lambda i: (budget_key(i), i["instruction_id"])), key=budget_key):
        items = list(group)
        total = sum(parse_amount(i["amount"]) for i in items)
        groups.append(
            {
                "PmtInfId": hashlib.sha256(f"{batch.batch_id}\x1f{clause_id}\x1f{year}".encode()).hexdigest()[:35],
                "PmtMtd": "TRF",
                "NbOfTxs": str(len(items)),
                "CtrlSum": format_fen(total),
                "ReqdExctnDt": {"Dt": execution_date},
                "Dbtr": {"Nm": debtor_name[:140]},
                "DbtrAcct": {"Id": {"Othr": {"Id": f"{debtor_account}"[:34]}}, "Nm": f"{clause_id} {year}"[:70]},
                "DbtrAgt": {"FinInstnId": {"Othr": {"Id": "NOTPROVIDED"}}},
                "CdtTrfTxInf": [
                    {
                        "PmtId": {"InstrId": i["instruction_id"][:35], "EndToEndId": i["instruction_id"][:35]},
                        "Amt": {"InstdAmt": {"@Ccy": i["currency"], "$": format_fen(parse_amount(i["amount"]))}},
                        "Cdtr": _party(i["payee"]),
                        "RmtInf": {"Ustrd": [_remittance(i)]},
                    }
                    for i in items
                ],
            }
        )
    document = {
        "CstmrCdtTrfInitn": {
            "GrpHdr": {
                "MsgId": batch.batch_id,
                "CreDtTm": created_at,
                "NbOfTxs": str(batch.number_of_transactions),
                "CtrlSum": batch.control_sum,
                "InitgPty": {"Nm": debtor_name[:140]},
            },
            "PmtInf": groups,
        }
    }
    schema = pain001_schema()
    element = schema.encode(document, path="Document", namespaces={"": PAIN001_NS}, validation="strict")
    ET.register_namespace("", PAIN001_NS)
    ET.indent(element)
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8", xml_declaration=False) + b"\n"
    schema.validate(io.BytesIO(xml))
    return xml
