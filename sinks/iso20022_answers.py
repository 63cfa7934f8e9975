"""The bank's side of ISO 20022: reading and writing the answers to a pain.001 (pain.002 status
reports, camt.054 debit/credit notifications) and the day's statement (camt.053), each validated
against its official XSD (sinks/xsd/README.md). Pure: no database; the ledger books what
``read_answers`` returns (sinks/ledger/bank_answers.py), the bank simulator writes with the
builders (sinks/bank_sim.py).

EndToEndId: the first sending of an instruction carries its uuid without hyphens (32 hex
characters); its n-th re-issue (a new batch after a rejection or a return) carries the same 32
characters, ``R`` and n (``…R1``, ``…R2``, at most 35 characters), so that a bank, which refuses an
EndToEndId it has seen, gets a new one, and each maps back to exactly one instruction and sending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable
from xml.sax.saxutils import escape as xml_escape

from rules.money import AmountError, format_fen, parse_amount

XSD_DIR = Path(__file__).resolve().parent / "xsd"
PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002_NS = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12"
CAMT054_NS = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
CAMT053_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_XSD = {PAIN001_NS: "pain.001.001.09.xsd", PAIN002_NS: "pain.002.001.12.xsd", CAMT054_NS: "camt.054.001.08.xsd", CAMT053_NS: "camt.053.001.08.xsd"}
_NAME = {PAIN001_NS: "pain.001", PAIN002_NS: "pain.002", CAMT054_NS: "camt.054", CAMT053_NS: "camt.053"}

#: pain.002 transaction statuses (ExternalPaymentTransactionStatus1Code) and what they say of a payment
PAIN002_STATUS = {"ACCP": "accepted", "ACTC": "accepted", "ACSP": "accepted", "ACWC": "accepted", "ACFC": "accepted",
                  "ACSC": "settled", "RJCT": "rejected"}
MAX_REISSUES = 99  # R1..R99 keep the EndToEndId within pain.001's 35 characters
_REISSUE = re.compile(r"^([0-9a-f]{32})(?:R([1-9][0-9]?))?$")
_HEX32 = re.compile(r"[0-9a-f]{32}")
# ISODateTime may come without an offset; a Chinese bank means Beijing time
_BANK_ZONE = dt.timezone(dt.timedelta(hours=8))


class AnswerFileError(ValueError):
    """A file that is not a valid pain.002, camt.054 or camt.053 (one line for the user)."""


def end_to_end_id(instruction_id: str, reissue: int = 0) -> str:
    """The EndToEndId of an instruction's first sending (0) or its ``reissue``-th re-issue."""
    if not 0 <= reissue <= MAX_REISSUES:
        raise ValueError(f"instruction {instruction_id}: re-issue {reissue} is beyond the {MAX_REISSUES} an EndToEndId can number")
    hex32 = instruction_id if _HEX32.fullmatch(instruction_id) else uuid.UUID(instruction_id).hex
    return hex32 if reissue == 0 else f"{hex32}R{reissue}"


def parse_end_to_end_id(value: str) -> tuple[str, int] | None:
    """(the instruction's 32 hex characters, re-issue number) of an EndToEndId we issued; None otherwise."""
    match = _REISSUE.match(value)
    return (match.group(1), int(match.group(2) or 0)) if match else None


@dataclass(frozen=True, slots=True)
class BankAnswer:
    """One answer about one payment, as a contract v1.1 ``payment-status`` message."""

    message_id: str  # the answer file's MsgId
    end_to_end_id: str
    status: str  # accepted | rejected | settled | returned
    reason_code: str | None
    amount_fen: int | None
    occurred_at: str  # RFC 3339 with an offset

    @property
    def event_id(self) -> str:
        return f"{self.message_id}/{self.end_to_end_id}/{self.status}"

    def message(self, source: str) -> dict[str, Any]:
        """The ``payment-status`` message (contract v1.1) of this answer."""
        out: dict[str, Any] = {"event_id": self.event_id, "source": source, "occurred_at": self.occurred_at,
                               "end_to_end_id": self.end_to_end_id, "status": self.status, "reason_code": self.reason_code}
        if self.amount_fen is not None:
            out["amount"] = format_fen(self.amount_fen)
        return out


@dataclass(frozen=True, slots=True)
class AnswerFile:
    kind: str  # pain.002 | camt.054
    message_id: str
    sha256: str
    answers: list[BankAnswer]

    @property
    def source(self) -> str:
        return f"bank-file:{self.kind}"


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One booked entry of a camt.053 statement: a payment out (DBIT) or a return (CRDT)."""

    end_to_end_id: str
    direction: str  # DBIT | CRDT
    amount_fen: int
    booked_on: str
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class Transfer:
    """One credit transfer of a pain.001, as the bank reads it."""

    end_to_end_id: str
    amount_fen: int
    creditor_account: str


@dataclass(frozen=True, slots=True)
class PaymentFile:
    """A pain.001 as the bank reads it."""

    message_id: str
    debtor_account: str
    execution_date: str
    transfers: list[Transfer]


# -- validation and reading ------------------------------------------------------------------


@lru_cache(maxsize=None)
def _schema(namespace: str) -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD_DIR / _XSD[namespace])))


def _document(data: bytes, expected: Iterable[str]) -> tuple[Any, str]:
    """The parsed document, validated against the XSD of its namespace, which must be one of ``expected``."""
    from lxml import etree

    try:
        root = etree.fromstring(data, etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as error:
        raise AnswerFileError(f"not well-formed XML: {error}") from None
    namespace = etree.QName(root).namespace or ""
    wanted = list(expected)
    if namespace not in wanted:
        raise AnswerFileError(f"a document of namespace {namespace or 'none'!r}, not {' or '.join(_NAME[n] for n in wanted)} ({', '.join(wanted)})")
    schema = _schema(namespace)
    if not schema.validate(root):
        raise AnswerFileError(f"does not validate against {_XSD[namespace]}: {schema.error_log.last_error}")
    return root, namespace


def _find(node: Any, path: str, ns: str) -> Any:
    return node.find("/".join(f"{{{ns}}}{part}" for part in path.split("/")))


def _findall(node: Any, path: str, ns: str) -> list[Any]:
    return list(node.findall("/".join(f"{{{ns}}}{part}" for part in path.split("/"))))


def _value(node: Any, path: str, ns: str) -> str | None:
    found = _find(node, path, ns)
    return found.text.strip() if found is not None and found.text else None


def _fen(node: Any, path: str, ns: str, where: str) -> int | None:
    found = _find(node, path, ns)
    if found is None:
        return None
    if found.get("Ccy") != "CNY":
        raise AnswerFileError(f"{where}: amount in {found.get('Ccy')}, not CNY")
    try:
        return parse_amount(found.text.strip())
    except AmountError as error:
        raise AnswerFileError(f"{where}: {error}") from None


def _moment(value: str) -> str:
    """An ISODateTime or ISODate as RFC 3339 with an offset."""
    if len(value) == 10:
        value += "T00:00:00"
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=_BANK_ZONE)).isoformat()


def read_answers(data: bytes) -> AnswerFile:
    """The answers of a pain.002.001.12 or camt.054.001.08 file, validated against its XSD."""
    root, ns = _document(data, (PAIN002_NS, CAMT054_NS))
    digest = hashlib.sha256(data).hexdigest()
    body = root[0]
    message_id = _value(body, "GrpHdr/MsgId", ns) or ""
    created = _moment(_value(body, "GrpHdr/CreDtTm", ns) or "")
    answers: list[BankAnswer] = []
    if ns == PAIN002_NS:
        transactions = _findall(body, "OrgnlPmtInfAndSts/TxInfAndSts", ns)
        group_status = _value(body, "OrgnlGrpInfAndSts/GrpSts", ns)
        if not transactions and group_status:
            # a status of the whole message names no payment: booking it would need the batch's items
            raise AnswerFileError(f"pain.002 {message_id}: group status {group_status} of message {_value(body, 'OrgnlGrpInfAndSts/OrgnlMsgId', ns)} "
                                  "with no status per transaction: ask the bank for one per EndToEndId")
        for tx in transactions:
            e2e = _value(tx, "OrgnlEndToEndId", ns) or ""
            code = _value(tx, "TxSts", ns) or ""
            where = f"pain.002 {message_id}: EndToEndId {e2e or '(none)'}"
            if code not in PAIN002_STATUS:
                raise AnswerFileError(f"{where}: transaction status {code or '(none)'} is none of {', '.join(PAIN002_STATUS)}")
            status = PAIN002_STATUS[code]
            reason = _value(tx, "StsRsnInf/Rsn/Cd", ns)
            if status == "rejected" and reason is None:
                raise AnswerFileError(f"{where}: RJCT without StsRsnInf/Rsn/Cd")
            answers.append(BankAnswer(message_id, e2e, status, reason if status == "rejected" else None,
                                      _fen(tx, "OrgnlTxRef/Amt/InstdAmt", ns, where), created))
        return AnswerFile("pain.002", message_id, digest, answers)
    for ntfctn in _findall(body, "Ntfctn", ns):
        for entry in _findall(ntfctn, "Ntry", ns):
            booked = _value(entry, "BookgDt/Dt", ns) or _value(entry, "BookgDt/DtTm", ns)
            direction = _value(entry, "CdtDbtInd", ns)
            for tx in _findall(entry, "NtryDtls/TxDtls", ns):
                e2e = _value(tx, "Refs/EndToEndId", ns) or ""
                where = f"camt.054 {message_id}: EndToEndId {e2e or '(none)'}"
                returned = _find(tx, "RtrInf", ns) is not None
                if returned != (direction == "CRDT"):
                    raise AnswerFileError(f"{where}: a {direction} entry {'with' if returned else 'without'} RtrInf: neither a settlement (DBIT) nor a return (CRDT with RtrInf)")
                reason = _value(tx, "RtrInf/Rsn/Cd", ns)
                if returned and reason is None:
                    raise AnswerFileError(f"{where}: a return without RtrInf/Rsn/Cd")
                amount = _fen(tx, "Amt", ns, where)
                if amount is None:
                    amount = _fen(entry, "Amt", ns, where)
                answers.append(BankAnswer(message_id, e2e, "returned" if returned else "settled", reason, amount, _moment(booked) if booked else created))
    return AnswerFile("camt.054", message_id, digest, answers)


def read_statement(data: bytes) -> tuple[str, set[str], list[StatementEntry]]:
    """(MsgId, the days its balances are of, booked entries with an EndToEndId) of a camt.053.001.08
    statement, validated against its XSD."""
    root, ns = _document(data, (CAMT053_NS,))
    body = root[0]
    message_id = _value(body, "GrpHdr/MsgId", ns) or ""
    entries: list[StatementEntry] = []
    days: set[str] = set()
    for stmt in _findall(body, "Stmt", ns):
        days.update((_value(bal, "Dt/Dt", ns) or (_value(bal, "Dt/DtTm", ns) or "")[:10]) for bal in _findall(stmt, "Bal", ns))
        for entry in _findall(stmt, "Ntry", ns):
            if _value(entry, "Sts/Cd", ns) not in (None, "BOOK"):
                continue  # pending or informational entries are not yet money moved
            booked = _value(entry, "BookgDt/Dt", ns) or (_value(entry, "BookgDt/DtTm", ns) or "")[:10]
            direction = _value(entry, "CdtDbtInd", ns) or ""
            for tx in _findall(entry, "NtryDtls/TxDtls", ns):
                e2e = _value(tx, "Refs/EndToEndId", ns) or ""
                where = f"camt.053 {message_id}: EndToEndId {e2e or '(none)'}"
                amount = _fen(tx, "Amt", ns, where)
                if amount is None:
                    amount = _fen(entry, "Amt", ns, where) or 0
                entries.append(StatementEntry(e2e, direction, amount, booked, _value(tx, "RtrInf/Rsn/Cd", ns)))
    return message_id, days - {""}, entries


def read_pain001(data: bytes) -> PaymentFile:
    """The credit transfers of a pain.001.001.09, validated against its XSD."""
    root, ns = _document(data, (PAIN001_NS,))
    body = root[0]
    transfers = [Transfer(_value(tx, "PmtId/EndToEndId", ns) or "", _fen(tx, "Amt/InstdAmt", ns, "pain.001") or 0,
                          _value(tx, "CdtrAcct/Id/Othr/Id", ns) or "")
                 for tx in _findall(body, "PmtInf/CdtTrfTxInf", ns)]
    return PaymentFile(_value(body, "GrpHdr/MsgId", ns) or "", _value(body, "PmtInf/DbtrAcct/Id/Othr/Id", ns) or "NOTPROVIDED",
                       _value(body, "PmtInf/ReqdExctnDt/Dt", ns) or "", transfers)


# -- writing (the bank simulator) ------------------------------------------------------------


def _validated(xml: str, namespace: str) -> bytes:
    data = xml.encode("utf-8")
    _document(data, (namespace,))
    return data


def _amount(fen: int) -> str:
    return f'<Amt Ccy="CNY">{format_fen(fen)}</Amt>'


_ACCOUNT = "<Acct><Id><Othr><Id>{}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>"


def _bank_code(returned: bool) -> str:
    sub = "RRTN" if returned else "ESCT"  # a returned credit transfer / a SEPA-style credit transfer
    return f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn></BkTxCd>"


def _entry(e2e: str, fen: int, booked_on: str, return_reason: str | None) -> str:
    returned = return_reason is not None
    direction = "CRDT" if returned else "DBIT"
    details = f"<TxDtls><Refs><EndToEndId>{xml_escape(e2e)}</EndToEndId></Refs>{_amount(fen)}<CdtDbtInd>{direction}</CdtDbtInd>"
    if return_reason is not None:
        details += f"<RtrInf><Rsn><Cd>{xml_escape(return_reason)}</Cd></Rsn></RtrInf>"
    return (f"<Ntry>{_amount(fen)}<CdtDbtInd>{direction}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{booked_on}</Dt></BookgDt>"
            f"<ValDt><Dt>{booked_on}</Dt></ValDt>{_bank_code(returned)}<NtryDtls>{details}</TxDtls></NtryDtls></Ntry>\n")


def pain002(message_id: str, created_at: str, original_message_id: str, statuses: list[tuple[str, str, str | None, int]]) -> bytes:
    """A pain.002.001.12 answering pain.001 ``original_message_id``: (EndToEndId, ACCP|RJCT|..., reason, fen) each."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{PAIN002_NS}"><CstmrPmtStsRpt>'
             f"<GrpHdr><MsgId>{xml_escape(message_id)}</MsgId><CreDtTm>{created_at}</CreDtTm></GrpHdr>"
             f"<OrgnlGrpInfAndSts><OrgnlMsgId>{xml_escape(original_message_id)}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>"
             f"<OrgnlNbOfTxs>{len(statuses)}</OrgnlNbOfTxs></OrgnlGrpInfAndSts>"
             f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{xml_escape(original_message_id[:35])}</OrgnlPmtInfId>\n"]
    for e2e, code, reason, fen in statuses:
        why = f"<StsRsnInf><Rsn><Cd>{xml_escape(reason)}</Cd></Rsn></StsRsnInf>" if reason else ""
        parts.append(f"<TxInfAndSts><OrgnlEndToEndId>{xml_escape(e2e)}</OrgnlEndToEndId><TxSts>{code}</TxSts>{why}"
                     f'<OrgnlTxRef><Amt><InstdAmt Ccy="CNY">{format_fen(fen)}</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>\n')
    parts.append("</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n")
    return _validated("".join(parts), PAIN002_NS)


def camt054(message_id: str, created_at: str, account: str, entries: list[tuple[str, int, str, str | None]]) -> bytes:
    """A camt.054.001.08 of the debtor's account: (EndToEndId, fen, booking day, return reason or None) each;
    a settlement is a DBIT entry, a return a CRDT entry with RtrInf."""
    body = "".join(_entry(*entry) for entry in entries)
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT054_NS}"><BkToCstmrDbtCdtNtfctn>'
           f"<GrpHdr><MsgId>{xml_escape(message_id)}</MsgId><CreDtTm>{created_at}</CreDtTm></GrpHdr>"
           f"<Ntfctn><Id>{xml_escape(message_id)}</Id><CreDtTm>{created_at}</CreDtTm>{_ACCOUNT.format(xml_escape(account))}\n{body}</Ntfctn>"
           "</BkToCstmrDbtCdtNtfctn></Document>\n")
    return _validated(xml, CAMT054_NS)


def camt053(message_id: str, created_at: str, account: str, day: str, opening_fen: int, entries: list[tuple[str, int, str, str | None]]) -> bytes:
    """A camt.053.001.08 statement of ``day``: the opening and closing booked balances and the entries
    (as ``camt054``)."""
    closing = opening_fen + sum(fen if reason else -fen for _, fen, _, reason in entries)

    def balance(code: str, fen: int) -> str:
        sign = "CRDT" if fen >= 0 else "DBIT"
        return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>{_amount(abs(fen))}<CdtDbtInd>{sign}</CdtDbtInd>"
                f"<Dt><Dt>{day}</Dt></Dt></Bal>")

    body = "".join(_entry(*entry) for entry in entries)
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT053_NS}"><BkToCstmrStmt>'
           f"<GrpHdr><MsgId>{xml_escape(message_id)}</MsgId><CreDtTm>{created_at}</CreDtTm></GrpHdr>"
           f"<Stmt><Id>{xml_escape(message_id)}</Id><CreDtTm>{created_at}</CreDtTm>{_ACCOUNT.format(xml_escape(account))}"
           f"{balance('OPBD', opening_fen)}{balance('CLBD', closing)}\n{body}</Stmt></BkToCstmrStmt></Document>\n")
    return _validated(xml, CAMT053_NS)


# -- reconciling a statement -----------------------------------------------------------------


def statement_differences(statement: list[StatementEntry], ledger: list[tuple[str, str, int]]) -> list[str]:
    """Every difference between a statement's entries and the ledger's (EndToEndId, DBIT|CRDT, fen)
    bookings of the same days, one line each; none when they match."""
    booked: dict[tuple[str, str], list[int]] = {}
    for e2e, direction, fen in ledger:
        booked.setdefault((e2e, direction), []).append(fen)
    on_statement: dict[tuple[str, str], list[int]] = {}
    for entry in statement:
        on_statement.setdefault((entry.end_to_end_id, entry.direction), []).append(entry.amount_fen)
    what = {"DBIT": "payment", "CRDT": "return"}
    lines = []
    for key in sorted(set(booked) | set(on_statement)):
        e2e, direction = key
        ours, theirs = sorted(booked.get(key, [])), sorted(on_statement.get(key, []))
        label = f"{what.get(direction, direction)} {e2e}"
        if not ours:
            lines.append(f"{label}: on the statement ({', '.join(format_fen(f) for f in theirs)} CNY), not in the ledger")
        elif not theirs:
            lines.append(f"{label}: in the ledger ({', '.join(format_fen(f) for f in ours)} CNY), not on the statement")
        elif ours != theirs:
            lines.append(f"{label}: {', '.join(format_fen(f) for f in theirs)} CNY on the statement, {', '.join(format_fen(f) for f in ours)} CNY in the ledger")
    return lines
