"""Finance exports of the ledger's instructions: CSV and ISO 20022 pain.001.001.09.

Both carry control totals (number of transactions, control sum) and a deterministic batch id
(a digest of the exported instruction ids and the date range), and use the instruction id as
the end-to-end id. The pain.001 document is generated from the shipped ISO 20022 XSD
(``sinks/xsd/pain.001.001.09.xsd``) with ``xmlschema``, which validates while it encodes;
the result is validated again as text before it is returned.

pain.001 is a credit transfer initiation: it carries the payments only. Clawbacks (negative
amounts) are money to recover, not to send; they are in the CSV export with their sign.

``subsidy ledger export`` reports the ledger's instructions by value date (payees named by id,
no accounts: not a file a bank can execute). ``subsidy payments export`` writes the payment file
of an approved batch (``batch_pain001``, ``batch_csv``): creditor accounts and banks, one
end-to-end id per instruction.

Every export carries the ledger's signed checkpoint when one is at hand
(sinks/ledger/checkpoints.py ``current_checkpoint``): in a CSV a "C" row after the column names,
in a pain.001 the document's supplementary data (``SplmtryData``, whose envelope the XSD leaves
open), so whoever holds the file holds evidence of the chain it came from.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape as xml_escape

from rules.money import format_fen, parse_amount
from sinks.iso20022_answers import end_to_end_id

if TYPE_CHECKING:
    from sinks.ledger.checkpoints import Checkpoint

PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN001_XSD = Path(__file__).with_name("xsd") / "pain.001.001.09.xsd"

DEFAULT_DEBTOR_NAME = "成都市经济和信息化局 (AI industry policy budget)"
DEFAULT_DEBTOR_ACCOUNT = "CHENGDU-AI-SUBSIDY-BUDGET"
#: the namespace of the checkpoint in a pain.001's supplementary data (ours: the envelope takes any element)
CHECKPOINT_NS = "urn:chengdu-ai-subsidy:ledger-checkpoint:1"


def checkpoint_row(checkpoint: "Checkpoint | None", batch_id: str, columns: int) -> list[list[str]]:
    """A CSV's "C" row with the checkpoint's line, or none."""
    if checkpoint is None:
        return []
    return [["C", batch_id, "", checkpoint.to_text()] + [""] * (columns - 4)]


def checkpoint_xml(checkpoint: "Checkpoint | None") -> str:
    """The checkpoint as a pain.001's document-level SplmtryData, or nothing."""
    if checkpoint is None:
        return ""
    fields = (("Seq", checkpoint.seq), ("HeadHash", checkpoint.head_hash), ("Entries", checkpoint.entries), ("Time", checkpoint.time),
              ("KeyId", checkpoint.key_id), ("Signature", checkpoint.signature))
    inner = "".join(f"<{name}>{xml_escape(str(value))}</{name}>" for name, value in fields)
    return (f'<SplmtryData><PlcAndNm>ledger checkpoint</PlcAndNm><Envlp><LedgerCheckpoint xmlns="{CHECKPOINT_NS}">{inner}</LedgerCheckpoint>'
            "</Envlp></SplmtryData>\n")

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
    value_dates: dict[str, str] = field(default_factory=dict)  # instruction id -> value date the ledger booked

    @property
    def control_sum(self) -> str:
        return format_fen(self.control_sum_fen)


def batch_id(kind: str, instruction_ids: list[str], date_from: str | None, date_to: str | None) -> str:
    """Deterministic, at most 35 characters (pain.001 MsgId): same instructions and range, same id."""
    digest = hashlib.sha256("\x1f".join([kind, date_from or "", date_to or "", *sorted(instruction_ids)]).encode()).hexdigest()
    return f"SUBS-{digest[:30]}"


def make_batch(kind: str, instructions: list[dict], date_from: str | None, date_to: str | None, value_dates: dict[str, str] | None = None) -> Batch:
    """``value_dates``: instruction id -> the value date the ledger booked (``Ledger.dated_instructions``,
    in the policy's time zone); the CSV export needs it."""
    return Batch(
        batch_id=batch_id(kind, [i["instruction_id"] for i in instructions], date_from, date_to),
        instructions=instructions,
        number_of_transactions=len(instructions),
        control_sum_fen=sum(parse_amount(i["amount"]) for i in instructions),
        value_dates=dict(value_dates or {}),
    )


def to_csv(batch: Batch, checkpoint: "Checkpoint | None" = None) -> str:
    """The checkpoint's row ("C"), detail rows ("D") in journal order, then one trailer row ("T") with the control totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(checkpoint_row(checkpoint, batch.batch_id, len(CSV_COLUMNS)))
    for i in batch.instructions:
        payee = i["payee"]
        writer.writerow(
            [
                "D",
                batch.batch_id,
                i["instruction_id"],
                i["kind"],
                batch.value_dates[i["instruction_id"]],
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
    checkpoint: "Checkpoint | None" = None,
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
    if checkpoint is not None:  # after the last PmtInf, where the XSD puts SplmtryData
        xml = xml.replace(b"</CstmrCdtTrfInitn>", checkpoint_xml(checkpoint).encode("utf-8") + b"</CstmrCdtTrfInitn>")
    schema.validate(io.BytesIO(xml))
    return xml


# -- the payment file of an approved batch (subsidy payments export) --------------------------
#
# Built as text from a template and validated once, whole, against the same XSD with libxml2
# (lxml): encoding through xmlschema, element by element, took 60.5 s for 53,179 payments
# (bench/README.md, "Payment file export").

BATCH_CSV_COLUMNS = ["record_type", "batch_id", "end_to_end_id", "payee_id", "account_name", "account_number", "bank_code",
                     "amount", "currency", "policy_id", "clause_id", "fiscal_year", "value_date"]
_CLEARING_SYSTEM = "CNAPS"  # ISO 20022 ExternalClearingSystemIdentification1Code of China's payment system


@lru_cache(maxsize=1)
def pain001_lxml_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(PAIN001_XSD)))


def _text(value: str, limit: int) -> str:
    return xml_escape(value[:limit])


def _agent(bank_code: str | None) -> str:
    if not bank_code:
        return "<FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId>"
    return f"<FinInstnId><ClrSysMmbId><ClrSysId><Cd>{_CLEARING_SYSTEM}</Cd></ClrSysId><MmbId>{_text(bank_code, 35)}</MmbId></ClrSysMmbId></FinInstnId>"


def _creditor(item) -> str:
    """CdtrAgt, Cdtr and CdtrAcct of a payee's account: the same for all its payments, built once."""
    scheme = "USCC" if item.payee_kind == "enterprise" else (item.payee_kind or "ID").upper()
    holder = "OrgId" if item.payee_kind == "enterprise" else "PrvtId"
    return (f"<CdtrAgt>{_agent(item.bank_code)}</CdtrAgt>"
            f"<Cdtr><Nm>{_text(item.account_name, 140)}</Nm><Id><{holder}><Othr><Id>{_text(item.payee_id, 35)}</Id>"
            f"<SchmeNm><Prtry>{_text(scheme, 35)}</Prtry></SchmeNm></Othr></{holder}></Id></Cdtr>"
            f"<CdtrAcct><Id><Othr><Id>{_text(item.account_number, 34)}</Id></Othr></Id><Nm>{_text(item.account_name, 70)}</Nm></CdtrAcct>")


def batch_pain001(state, items: list, *, created_at: str, execution_date: str, debtor_name: str = DEFAULT_DEBTOR_NAME,
                  debtor_account: str = DEFAULT_DEBTOR_ACCOUNT, debtor_bank: str | None = None, checkpoint: "Checkpoint | None" = None) -> bytes:
    """A pain.001.001.09 document a bank can execute for a batch (``Ledger.batch_contents``): one PmtInf
    per budget (policy, clause, fiscal year), each creditor with its account (``Othr/Id``: IBAN is
    not used in China) and its bank's CNAPS participant code, NbOfTxs and CtrlSum per message and
    per PmtInf; validated against the XSD. Raises ValueError on what a payment file cannot hold."""
    if not items:
        raise ValueError(f"batch {state.batch_id} holds no payment")
    if any(item.amount_fen <= 0 for item in items):
        raise ValueError(f"batch {state.batch_id}: a credit transfer carries positive amounts only")
    total = sum(item.amount_fen for item in items)
    if (len(items), total) != (state.number_of_transactions, state.control_sum_fen):
        raise ValueError(f"batch {state.batch_id}: its items ({len(items)}, {format_fen(total)}) differ from its control totals "
                         f"({state.number_of_transactions}, {format_fen(state.control_sum_fen)}); run `subsidy ledger reconcile`")
    debtor = _text(debtor_name, 140)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<Document xmlns="{PAIN001_NS}">\n<CstmrCdtTrfInitn>\n',
             f"<GrpHdr><MsgId>{_text(state.batch_id, 35)}</MsgId><CreDtTm>{xml_escape(created_at)}</CreDtTm>"
             f"<NbOfTxs>{len(items)}</NbOfTxs><CtrlSum>{format_fen(total)}</CtrlSum><InitgPty><Nm>{debtor}</Nm></InitgPty></GrpHdr>\n"]
    creditors: dict[tuple[str, str, str, str], str] = {}
    budget = lambda item: (item.policy_id, item.clause_id, item.fiscal_year)  # noqa: E731
    for number, ((policy_id, clause_id, year), group) in enumerate(groupby(sorted(items, key=lambda i: (budget(i), i.instruction_id)), key=budget), 1):
        payments = list(group)
        remittance = _text(f"{policy_id} {clause_id} FY{year}", 100)
        parts.append(f"<PmtInf><PmtInfId>{_text(state.batch_id, 28)}-{number}</PmtInfId><PmtMtd>TRF</PmtMtd>"
                     f"<NbOfTxs>{len(payments)}</NbOfTxs><CtrlSum>{format_fen(sum(p.amount_fen for p in payments))}</CtrlSum>"
                     f"<ReqdExctnDt><Dt>{xml_escape(execution_date)}</Dt></ReqdExctnDt><Dbtr><Nm>{debtor}</Nm></Dbtr>"
                     f"<DbtrAcct><Id><Othr><Id>{_text(debtor_account, 34)}</Id></Othr></Id><Nm>{_text(f'{clause_id} {year}', 70)}</Nm></DbtrAcct>"
                     f"<DbtrAgt>{_agent(debtor_bank)}</DbtrAgt>\n")
        for p in payments:
            key = (p.payee_id, p.account_name, p.account_number, p.bank_code)
            creditor = creditors.get(key) or creditors.setdefault(key, _creditor(p))
            iid = xml_escape(p.instruction_id[:35])
            parts.append(f"<CdtTrfTxInf><PmtId><InstrId>{iid}</InstrId><EndToEndId>{end_to_end_id(p.instruction_id, p.reissue)}</EndToEndId></PmtId>"
                         f'<Amt><InstdAmt Ccy="CNY">{format_fen(p.amount_fen)}</InstdAmt></Amt>{creditor}'
                         f"<RmtInf><Ustrd>{remittance} {iid}</Ustrd></RmtInf></CdtTrfTxInf>\n")
        parts.append("</PmtInf>\n")
    parts.append(checkpoint_xml(checkpoint) + "</CstmrCdtTrfInitn>\n</Document>\n")
    xml = "".join(parts).encode("utf-8")
    from lxml import etree

    schema = pain001_lxml_schema()
    document = etree.fromstring(xml, etree.XMLParser(huge_tree=True))
    if not schema.validate(document):
        raise ValueError(f"the pain.001 of batch {state.batch_id} does not validate against {PAIN001_XSD.name}: {schema.error_log.last_error}")
    return xml


def batch_csv(state, items: list, checkpoint: "Checkpoint | None" = None) -> str:
    """The checkpoint's row ("C"), detail rows ("D") in instruction order, then one trailer row ("T") with the control totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BATCH_CSV_COLUMNS)
    writer.writerows(checkpoint_row(checkpoint, state.batch_id, len(BATCH_CSV_COLUMNS)))
    writer.writerows(["D", state.batch_id, end_to_end_id(p.instruction_id, p.reissue), p.payee_id, p.account_name, p.account_number, p.bank_code,
                      format_fen(p.amount_fen), "CNY", p.policy_id, p.clause_id, p.fiscal_year, p.value_date] for p in items)
    writer.writerow(["T", state.batch_id, "", f"transactions={len(items)}", "", "", "", format_fen(sum(p.amount_fen for p in items)), "CNY", "", "", "", ""])
    return out.getvalue()
