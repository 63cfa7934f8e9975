"""OpenAPI 3.1 description of the console's HTTP API, as data (served at ``/openapi.json``).

``tests/console/test_api.py`` checks that every GET route of the app is described here and
that every path here is a route.
"""

from __future__ import annotations

from typing import Any, Collection, get_args

from schemas.outputs import Outcome

OUTCOMES = get_args(Outcome)
MONEY_NOTE = "Money is an integer number of fen (`*_fen`) with the same amount as a decimal string in CNY next to it; never a float."


def _money(description: str, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["string", "null"] if nullable else "string", "pattern": r"^-?(0|[1-9][0-9]*)\.[0-9]{2}$", "description": description + " (decimal string, CNY)"}


def _fen(description: str, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["integer", "null"] if nullable else "integer", "description": description + " (fen)"}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


BAD_REQUEST = {"description": "A query parameter out of range or not one of its values; the error says which are valid.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
# text an operator sends: no control characters (a NUL cannot even be stored by PostgreSQL)
TEXT_PATTERN = "^[^\u0000-\u001f\u007f-\u009f]*$"
ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
UNAVAILABLE = {"description": "The ledger cannot be read (missing file, no schema yet, database down).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Session": {"type": "object", "required": ["name", "role", "csrf"], "properties": {
        "login_required": {"type": "boolean"}, "name": {"type": ["string", "null"]}, "role": {"type": ["string", "null"], "enum": ["viewer", "maker", "checker", "admin", None]},
        "csrf": {"type": ["string", "null"]}}},
    "Holds": {"type": "object", "required": ["holds"], "properties": {"holds": {"type": "array", "items": {"type": "object", "required": ["payee_id", "placed_by", "placed_at", "reason"], "properties": {
        "payee_id": {"type": "string"}, "placed_by": {"type": "string"}, "placed_at": {"type": "string"}, "reason": {"type": "string"}}}}}},
    "ActionDone": {"type": "object", "required": ["action", "payee_id", "by", "at", "reason"], "properties": {
        "action": {"type": "string", "enum": ["hold", "release"]}, "payee_id": {"type": "string"}, "by": {"type": "string"}, "at": {"type": "string"}, "reason": {"type": "string"}}},
    "BatchApproved": {"type": "object", "required": ["batch_id", "status", "by", "approvers", "approvals_required"], "properties": {
        "batch_id": {"type": "string"}, "status": {"type": "string", "enum": ["proposed", "approved"], "description": "approved once it has the approvals it needs"},
        "by": {"type": "string"}, "approvers": {"type": "array", "items": {"type": "string"}}, "approvals_required": {"type": "integer", "minimum": 1, "maximum": 2}}},
    "Clause": {
        "type": "object",
        "properties": {
            "clause_id": {"type": "string", "examples": ["compute-voucher"]},
            "title": {"type": ["string", "null"], "description": "the clause's Chinese title from the policy", "examples": ["算力券"]},
            "article": {"type": ["integer", "null"]},
            "programme": {"type": ["string", "null"], "description": "policy_id of the programme the clause belongs to (several may run together)",
                          "examples": ["chengdu-high-tech-zone-2025"]},
        },
    },
    "Summary": {
        "type": "object",
        "properties": {
            "policy": {"type": "object", "properties": {"policy_id": {"type": "string"}, "version": {"type": "string"}, "title": {"type": "string"}}},
            "ledger": {"type": "string", "description": "ledger URL without password"},
            "decisions": {"type": "integer"},
            "decisions_by_outcome": {"type": "object", "additionalProperties": {"type": "integer"}},
            "decisions_by_clause_outcome": {"type": "array", "items": {"type": "object", "properties": {"clause_id": {"type": "string"}, "outcome": {"type": "string"}, "count": {"type": "integer"}}}},
            "events_decided_by_topic": {"type": "object", "additionalProperties": {"type": "integer"}},
            "rejections": {"type": "integer"},
            "rejections_by_topic": {"type": "object", "additionalProperties": {"type": "integer"}},
            "rejections_by_code": {"type": "object", "additionalProperties": {"type": "integer"}},
            "payments": {"type": "integer"},
            "paid_fen": _fen("sum of payments"),
            "paid": _money("sum of payments"),
            "clawbacks": {"type": "integer"},
            "clawed_back_fen": _fen("sum of clawbacks, positive"),
            "clawed_back": _money("sum of clawbacks, positive"),
            "net_granted_fen": _fen("payments minus clawbacks"),
            "net_granted": _money("payments minus clawbacks"),
            "last_recorded_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "SeriesPoint": {
        "type": "object",
        "required": ["date", "granted_fen", "granted"],
        "properties": {"date": {"type": "string", "format": "date", "description": "value date (the policy's time zone)"}, "granted_fen": _fen("cumulative net granted at the end of that day"), "granted": _money("cumulative net granted")},
    },
    "Projection": {
        "type": "object",
        "properties": {
            "method": {"type": "string"},
            "as_of": {"type": "string", "format": "date"},
            "window_from": {"type": "string", "format": "date"},
            "window_to": {"type": "string", "format": "date"},
            "slope_fen_per_day": _fen("trend of the last 30 days, per day"),
            "slope_per_day": _money("trend per day"),
            "exhaustion_date": {"type": ["string", "null"], "format": "date", "description": "the day the budget ran out (status exhausted) or is projected to"},
            "within_fiscal_year": {"type": "boolean"},
            "status": {"type": "string", "enum": ["exhausted", "projected", "no-trend", "no-budget"]},
            "year_end_granted_fen": _fen("projected cumulative at the end of the fiscal year", True),
            "year_end_granted": _money("projected cumulative at the end of the fiscal year", True),
        },
    },
    "Budget": {
        "allOf": [{"$ref": "#/components/schemas/Clause"}],
        "type": "object",
        "required": ["clause_id", "fiscal_year", "granted_fen", "granted", "series", "projection"],
        "properties": {
            "fiscal_year": {"type": "integer"},
            "budget_cap": {"type": ["string", "null"], "description": "id of the programme cap (per: []) that is the budget; null when the clause has none"},
            "budget_fen": _fen("programme budget", True),
            "budget": _money("programme budget", True),
            "budget_source": {"type": ["string", "null"], "enum": ["ledger cap usage", "policy", None]},
            "granted_fen": _fen("net granted this fiscal year"),
            "granted": _money("net granted this fiscal year"),
            "remaining_fen": _fen("budget minus granted", True),
            "remaining": _money("budget minus granted", True),
            "used_ratio": {"type": ["number", "null"], "description": "granted / budget (a ratio, not money)"},
            "count_limits": {"type": "array", "items": {"type": "object", "properties": {"cap": {"type": "string"}, "limit": {"type": "integer"}, "used": {"type": "integer"}, "remaining": {"type": "integer"}}}},
            "series": {"type": "array", "items": {"$ref": "#/components/schemas/SeriesPoint"}},
            "projection": {"$ref": "#/components/schemas/Projection"},
        },
    },
    "Budgets": {
        "type": "object",
        "properties": {"as_of": {"type": "string", "format": "date"}, "currency": {"const": "CNY"}, "trend_days": {"type": "integer"}, "budgets": {"type": "array", "items": {"$ref": "#/components/schemas/Budget"}}},
    },
    "Party": {"type": ["object", "null"], "properties": {"id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}, "kind": {"type": ["string", "null"]}}},
    "CapUse": {
        "allOf": [{"$ref": "#/components/schemas/Clause"}],
        "type": "object",
        "properties": {
            "cap": {"type": "string"},
            "per": {"type": "array", "items": {"type": "string", "enum": ["beneficiary", "subject"]}},
            "period": {"type": "string", "description": "fiscal year or `ever`"},
            "who": {"type": "array", "items": {"type": "string"}, "description": "the beneficiary id and/or subject the cap is kept for"},
            "scope": {"type": "string", "description": "the engine's state key of this cap"},
            "kind": {"type": "string", "enum": ["amount", "count"]},
            "beneficiary": {"$ref": "#/components/schemas/Party"},
            "payee": {"$ref": "#/components/schemas/Party"},
            "used_ratio": {"type": "number"},
            "limit_fen": _fen("cap"), "limit": _money("cap"),
            "used_fen": _fen("used"), "used": _money("used"),
            "room_fen": _fen("left under the cap"), "room": _money("left under the cap"),
            "limit_count": {"type": "integer"}, "used_count": {"type": "integer"}, "room_count": {"type": "integer"},
        },
    },
    "NearestCaps": {
        "type": "object",
        "properties": {"limit": {"type": "integer"}, "kind": {"type": "string"}, "caps_tracked": {"type": "integer"}, "caps": {"type": "array", "items": {"$ref": "#/components/schemas/CapUse"}}},
    },
    "Decision": {
        "type": "object",
        "description": "A decision as stored in the ledger (the wire contract's subsidy-decisions message, see docs/DESIGN.md), plus clause_title, granted_fen, declined_fen and recorded_at.",
        "properties": {
            "decision_id": {"type": "string"}, "event_id": {"type": "string"}, "source": {"type": "string"}, "topic": {"type": "string"},
            "occurred_at": {"type": "string", "format": "date-time"}, "clause_id": {"type": "string"}, "clause_title": {"type": ["string", "null"]},
            "fiscal_year": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["granted", "partly-granted", "declined", "clawed-back", "adjusted", "refund-recorded"]},
            "payee": {"$ref": "#/components/schemas/Party"}, "beneficiary": {"$ref": "#/components/schemas/Party"},
            "granted": _money("granted"), "granted_fen": _fen("granted"),
            "declined": _money("declined"), "declined_fen": _fen("declined"),
            "declined_by": {"type": ["string", "null"]}, "reason": {"type": "string"},
            "computation": {"type": "object", "description": "base, rate, raw entitlement, each cap applied with what was left under it, granted"},
            "instruction_id": {"type": ["string", "null"]},
            "recorded_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "additionalProperties": True,
    },
    "RecentDecisions": {"type": "object", "properties": {"limit": {"type": "integer"}, "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}}}},
    "RejectionExample": {
        "type": "object",
        "properties": {
            "rejection_id": {"type": "string"}, "topic": {"type": "string"}, "partition": {"type": ["integer", "null"]}, "offset": {"type": ["integer", "null"]},
            "key": {"type": ["string", "null"]}, "reason": {"type": "string"},
            "original_text": {"type": ["string", "null"], "description": "the original message as text (when UTF-8), cut at 16,000 characters"},
            "original_truncated": {"type": "boolean"},
            "original_base64": {"type": ["string", "null"], "description": "the original bytes when they are not UTF-8"},
            "rejected_at": {"type": ["string", "null"], "format": "date-time"}, "recorded_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Rejections": {
        "type": "object",
        "properties": {
            "total": {"type": "integer"},
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"}, "count": {"type": "integer"}, "last_recorded_at": {"type": ["string", "null"]},
                        "by_topic": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "examples": {"type": "array", "items": {"$ref": "#/components/schemas/RejectionExample"}},
                    },
                },
            },
        },
    },
    "LedgerIntegrity": {
        "type": "object",
        "properties": {
            "source": {"type": ["string", "null"], "description": "where the checkpoints are read ($SUBSIDY_CHECKPOINTS)"},
            "checkpoint": {"type": ["object", "null"], "description": "the newest signed checkpoint: seq, head_hash, entries, time, key_id"},
            "verified": {"type": ["boolean", "null"], "description": "whether the hash chain verifies against it; null without one"},
            "problems": {"type": "array", "items": {"type": "string"}}, "notes": {"type": "array", "items": {"type": "string"}},
            "chain_seq": {"type": "integer"}, "checked_at": {"type": "string"},
        },
    },
    "HeldPayments": {
        "type": "object",
        "properties": {
            "as_of": {"type": "string", "format": "date", "description": "the day the holds are as of (the policy's time zone)"},
            "count": {"type": "integer"}, "total_fen": _fen("all payments held today"), "total": _money("all payments held today"), "limit": {"type": "integer"},
            "holds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "instruction_id": {"type": "string"}, "payee_id": {"type": "string"}, "payee_name": {"type": ["string", "null"]},
                        "clause_id": {"type": "string"}, "fiscal_year": {"type": "integer"},
                        "amount_fen": _fen("the payment"), "amount": _money("the payment"),
                        "held_from": {"type": "string", "format": "date", "description": "the claim's day"},
                        "payable_from": {"type": ["string", "null"], "format": "date", "description": "the day it may be paid from; null while the listing has no end"},
                        "listing": {
                            "type": "object",
                            "properties": {
                                "listed_party": {"type": "string", "description": "the payee, or the beneficiary of a payment to another party"},
                                "list": {"type": "string"}, "reference": {"type": "string"},
                                "from": {"type": ["string", "null"], "format": "date"}, "to": {"type": ["string", "null"], "format": "date", "description": "its last day; null: no end yet"},
                            },
                        },
                    },
                },
            },
        },
    },
    "Payments": {
        "type": "object",
        "required": ["as_of", "awaiting_approval", "batches", "states", "awaiting_account", "bank_refusals", "receivables"],
        "properties": {
            "as_of": {"type": "string", "format": "date"},
            "awaiting_approval": {"type": "integer", "description": "batches proposed and not yet approved"},
            "batches": {"type": "array", "description": "newest first", "items": {"type": "object", "properties": {
                "batch_id": {"type": "string", "examples": ["PB000001"]}, "status": {"type": "string", "enum": ["proposed", "approved", "sent"]},
                "maker": {"type": "string"}, "proposed_at": {"type": "string"}, "approvers": {"type": "array", "items": {"type": "string"}},
                "approvals_required": {"type": "integer"}, "clause_id": {"type": ["string", "null"]}, "until_date": {"type": ["string", "null"]},
                "sent_at": {"type": ["string", "null"]}, "payments": {"type": "integer"},
                "control_sum_fen": _fen("the batch's payments, as paid (netted)"), "control_sum": _money("the batch's payments, as paid (netted)")}}},
            "states": {"type": "array", "description": "batched payments by their furthest status, then the voided ones (batched or not)", "items": {"type": "object", "properties": {
                "state": {"type": "string"}, "payments": {"type": "integer"}, "amount_fen": _fen("as paid"), "amount": _money("as paid")}}},
            "awaiting_account": {"type": "object", "properties": {
                "payments": {"type": "integer"}, "total_fen": _fen("payments awaiting an account"), "total": _money("payments awaiting an account"),
                "payees": {"type": "array", "items": {"type": "object", "properties": {
                    "payee_id": {"type": "string"}, "payee_name": {"type": ["string", "null"]}, "payments": {"type": "integer"},
                    "amount_fen": _fen("awaiting"), "amount": _money("awaiting")}}}}},
            "bank_refusals": {"type": "array", "description": "the bank's newest rejections and returns", "items": {"type": "object", "properties": {
                "instruction_id": {"type": "string"}, "batch_id": {"type": "string"}, "status": {"type": "string", "enum": ["rejected", "returned"]},
                "at": {"type": "string"}, "reason_code": {"type": ["string", "null"], "examples": ["AC04"]}, "payee_id": {"type": "string"},
                "amount_fen": _fen("the payment as sent"), "amount": _money("the payment as sent")}}},
            "receivables": {"type": "object", "description": "what payees owe back that no payment has netted yet (`subsidy ledger receivables`)", "properties": {
                "as_of": {"type": "string", "format": "date"}, "total_fen": _fen("owed back"), "total": _money("owed back"),
                "buckets": {"type": "object", "description": "by days since the clawback: 0-30, 31-90, 91-180, >180", "additionalProperties": _money("owed back")},
                "payees": {"type": "array", "items": {"type": "object", "properties": {
                    "payee_id": {"type": "string"}, "payee_name": {"type": "string"}, "owed": _money("owed back"),
                    "since": {"type": "string", "format": "date", "description": "the oldest clawback still owed"},
                    "buckets": {"type": "object", "additionalProperties": _money("owed back")}}}}}},
        },
    },
    "PayeePayments": {
        "type": "object",
        "required": ["payee_id", "instructions"],
        "properties": {
            "payee_id": {"type": "string"}, "payee_name": {"type": "string"}, "as_of": {"type": "string", "format": "date"},
            "has_account": {"type": "boolean", "description": "whether the payee has a verified, unrevoked account"},
            "owed_back_fen": _fen("what the payee owes back"), "owed_back": _money("what the payee owes back"), "limit": {"type": "integer"},
            "instructions": {"type": "array", "description": "newest first", "items": {"type": "object", "properties": {
                "instruction_id": {"type": "string"}, "kind": {"type": "string", "enum": ["payment", "clawback"]},
                "clause_id": {"type": "string"}, "fiscal_year": {"type": "integer"}, "value_date": {"type": "string", "format": "date"},
                "amount_fen": _fen("as decided (a clawback negative)"), "amount": _money("as decided (a clawback negative)"),
                "state": {"type": "string", "description": "a payment: awaiting account, held, decided, netted, voided, void requested, or its batch's furthest status "
                          "(batched, approved, sent, then the bank's answers); a clawback: owed back, recovered, or payment voided (nothing owed)",
                          "examples": ["awaiting account", "held", "batched", "approved", "sent", "netted", "voided", "owed back"]},
                "batch_id": {"type": ["string", "null"]},
                "netted_fen": _fen("of a payment: withheld for what the payee owed; of a clawback: recovered"), "netted": _money("netted"),
                "paid_fen": _fen("in the payment file (null until batched)", nullable=True), "owed_fen": _fen("of a clawback: still owed back")}}},
        },
    },
    "WhatIf": {
        "type": "object",
        "required": ["saved"],
        "description": "The what-if the console was started with (`subsidy console --whatif FILE`, written by `subsidy whatif ... --save FILE`), or only `saved: false`.",
        "properties": {
            "saved": {"type": "boolean"},
            "saved_at": {"type": "string"},
            "events_file": {"type": "string"},
            "policies": {"type": "object", "description": "current and new: policy_id, version and file", "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}}},
            "current": {"type": "object", "properties": {"granted": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": _money("net granted under the current policy")}}}},
            "new": {"type": "object", "properties": {"granted": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": _money("net granted under the new policy")}}}},
            "diff": {"type": "object", "description": "clause -> fiscal year -> new minus current", "additionalProperties": {"type": "object", "additionalProperties": _money("new minus current")}},
            "payees_affected": {"type": "integer"},
            "exhaustion": {"type": "object", "description": "current and new: clause -> fiscal year -> the day the programme budget ran out (null: it lasted)",
                           "additionalProperties": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": ["string", "null"], "format": "date"}}}},
        },
    },
    "Streams": {
        "type": "object",
        "properties": {
            "configured": {"type": "boolean"},
            "explanation": {"type": ["string", "null"]},
            "interval_seconds": {"type": "number"},
            "workers": {"type": "array", "items": {"type": "object", "properties": {"url": {"type": "string"}, "up": {"type": "boolean"}, "error": {"type": ["string", "null"]}, "scraped_at": {"type": ["number", "null"]}, "families": {"type": "integer"}}}},
            "topics": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string"},
                        "events_in_total": {"type": "number"}, "events_in_per_second": {"type": ["number", "null"]},
                        "events_out_total": {"type": "number"}, "events_out_per_second": {"type": ["number", "null"]},
                        "lag": {"type": ["number", "null"], "description": "consumer lag in messages, summed over partitions and workers"},
                    },
                },
            },
        },
    },
}


def _get(summary: str, description: str, ok: dict[str, Any], parameters: list | None = None, ledger: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "description": description, "responses": {"200": ok}}
    if parameters:
        op["parameters"] = parameters
        op["responses"]["400"] = BAD_REQUEST
    if ledger:
        op["responses"]["503"] = UNAVAILABLE
    return {"get": op}


def _post(summary: str, description: str, body: dict[str, int] | None, ok: dict[str, Any], refusals: dict[str, str]) -> dict[str, Any]:
    """A state-changing operation: a JSON object of string fields (name: longest length), or no body."""
    responses: dict[str, Any] = {"200": ok}
    operation: dict[str, Any] = {"summary": summary, "description": description, "responses": responses}
    if body is not None:
        schema = {"type": "object", "required": list(body), "properties": {name: {"type": "string", "minLength": 1, "maxLength": longest, "pattern": TEXT_PATTERN} for name, longest in body.items()}}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        responses["400"] = {"description": "not a JSON object with these fields as text", **ERROR}
    responses.update({status: {"description": why, **ERROR} for status, why in refusals.items()})
    return {"post": operation}


_ACTION_REFUSALS = {"401": "not logged in (and no break-glass admin token)", "403": "a role too low, the CSRF header missing or wrong, or (release) the same operator who placed the hold",
                    "409": "already on hold, or not on hold", "503": "the ledger cannot be read or written"}
_DONE = {"description": "recorded in operator_actions and, as an entry, in the ledger's hash chain", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActionDone"}}}}


def _approval() -> dict[str, Any]:
    path_item = _post("Approve a proposed payment batch (checker or higher, not its maker)",
                      "What `subsidy payments approve BATCH --as USER` records, as the logged-in operator: an approval in ledger_approvals and an entry of the hash chain; "
                      "the last approval a batch needs (two above the dual-approval amount, by different people) makes its payments approved. Needs the session's X-CSRF-Token header.",
                      None, {"description": "approved", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchApproved"}}}},
                      {"400": "not a batch id", "401": "not logged in (and no break-glass admin token)", "403": "a role too low, the CSRF header missing or wrong, or the operator proposed the batch",
                       "404": "no such batch in the ledger", "409": "the batch is approved or sent already, or the operator approved it already", "503": "the ledger cannot be read or written"})
    path_item["post"]["parameters"] = [{"name": "batch_id", "in": "path", "required": True, "description": "the batch, as `subsidy payments list` and /api/payments name it (PBnnnnnn)",
                                        "schema": {"type": "string", "minLength": 1, "maxLength": 35, "pattern": TEXT_PATTERN}, "example": "PB000001"}]
    return path_item


def _not_found(path_item: dict[str, Any], description: str) -> dict[str, Any]:
    path_item["get"]["responses"]["404"] = {"description": description, **ERROR}
    return path_item


def _int_param(name: str, default: int, maximum: int, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


def spec(clauses: Collection[str] = ()) -> dict[str, Any]:
    """The document; ``clauses``: the ids of the console's policy, the values ``clause`` takes."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Subsidy console API",
            "version": "1",
            "description": "View of the subsidy ledger and the stream workers, operators' holds on payees, and checkers' approvals of payment batches. " + MONEY_NOTE
            + " Once the ledger has operators (`subsidy console users add`), the data under /api/ needs a login (POST /api/login). A POST needs a"
            " logged-in operator of the role it names and the session's X-CSRF-Token header, or the break-glass admin bearer token"
            " (SUBSIDY_CONSOLE_ADMIN_TOKEN), each use logged.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/": _get("The console page", "HTML page drawing the API below; refreshes every 5 s.", {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}, ledger=False),
            "/api/summary": _get("Totals", "Decisions by outcome, events and rejections by topic, amounts paid and clawed back.", _json("Summary", "totals")),
            "/api/budgets": _get(
                "Budget burn-down per clause and fiscal year",
                "For every clause and fiscal year with payments (and every clause with a programme budget this year): the budget (a cap with `per: []`), net granted, remaining, the daily cumulative series and the projected exhaustion date by the linear trend of the last 30 days.",
                _json("Budgets", "one entry per clause and fiscal year"),
            ),
            "/api/caps/nearest": _get(
                "Payees nearest their caps",
                "Per-beneficiary and per-subject caps ordered by used/limit, highest first, with the beneficiary and payee of the latest payment charged to each.",
                _json("NearestCaps", "caps"),
                [_int_param("limit", 20, 500, "how many caps"), {"name": "kind", "in": "query", "required": False, "schema": {"type": "string", "enum": ["amount", "count", "all"], "default": "amount"}}],
            ),
            "/api/decisions/recent": _get(
                "Recent decisions with their computation",
                "Newest recorded decisions first.",
                _json("RecentDecisions", "decisions"),
                [
                    _int_param("limit", 50, 500, "how many decisions"),
                    {"name": "outcome", "in": "query", "required": False, "description": "only decisions with this outcome; another value is answered 400",
                     "schema": {"type": "string", "enum": list(OUTCOMES)}},
                    {"name": "clause", "in": "query", "required": False, "description": "only decisions of this clause, an id of the console's policy (as in /api/budgets); another value is answered 400",
                     "schema": {"type": "string", "enum": sorted(clauses)} if clauses else {"type": "string"}},
                ],
            ),
            "/api/rejections": _get(
                "Rejections grouped by reason code",
                "Counts per code and topic, with the latest examples including the original message text.",
                _json("Rejections", "groups"),
                [_int_param("examples", 3, 20, "examples per code")],
            ),
            "/api/held-payments": _get(
                "Held payments",
                "Payments held today because their payee (or the beneficiary of a payment to another party) is listed on payee-exclusions: the listing (its newest message), the claim's day and the day the payment may be paid from; oldest hold first.",
                _json("HeldPayments", "held payments"),
                [_int_param("limit", 100, 1000, "how many held payments")],
            ),
            "/api/ledger-integrity": _get(
                "The ledger's newest signed checkpoint",
                "The newest checkpoint of $SUBSIDY_CHECKPOINTS (the chain head signed by the workers) and whether the ledger's hash chain verifies against it; checked at most once a minute.",
                _json("LedgerIntegrity", "checkpoint and verification"),
            ),
            "/api/payments": _get(
                "Payments",
                "Batches (newest first) with who proposed and approved them, batched payments by their furthest status, payments awaiting an account, the bank's rejections and returns, and aged receivables.",
                _json("Payments", "the payments page"),
                [_int_param("limit", 50, 500, "how many batches, payees and bank answers each")],
            ),
            "/api/payee-payments": _not_found(_get(
                "A payee's payments and where each stands",
                "Newest first: awaiting account, held, batched PBnnnnnn, approved, sent (and the bank's answers), netted; clawbacks owed back or recovered.",
                _json("PayeePayments", "the payee's instructions"),
                [{"name": "payee_id", "in": "query", "required": True, "description": "the payee's id (USCC, resident id or team reference)",
                  "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": TEXT_PATTERN}},
                 _int_param("limit", 200, 1000, "how many instructions")],
            ), "no instruction ever named this payee"),
            "/api/streams": _get(
                "Throughput and consumer lag per topic",
                "From the workers' /metrics given with --worker-metrics, scraped every 5 s; with no worker configured, an empty list and an explanation.",
                _json("Streams", "per-topic figures"),
                ledger=False,
            ),
            "/api/whatif": _get(
                "The saved what-if",
                "A policy change's comparison saved by `subsidy whatif EVENTS --policy NEW --save FILE` and given to the console with --whatif FILE: totals under each policy, their difference and each programme budget's exhaustion date, shown beside the burn-down; `saved: false` without one.",
                _json("WhatIf", "the saved what-if"),
            ),
            "/login": _get("The login page", "HTML form posting to /api/login.", {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}, ledger=False),
            "/api/session": _get("Who is logged in", "Whether the ledger has operators (then the data under /api/ needs a login), and the session's operator and CSRF token.", _json("Session", "the session")),
            "/api/holds": {
                **_get("Payees on hold", "Each payee whose latest hold or release is a hold, newest first.", _json("Holds", "holds")),
                **_post("Hold a payee (maker or higher)", "Recorded in operator_actions and the ledger's hash chain with the operator's name. Needs the session's X-CSRF-Token header.",
                        {"payee_id": 128, "reason": 500}, _DONE, {**_ACTION_REFUSALS, "404": "no such payee in the ledger"}),
            },
            "/api/holds/release": _post("Release a payee's hold (checker or higher, not the one who placed it)", "Recorded in operator_actions and the ledger's hash chain with the operator's name. Needs the session's X-CSRF-Token header.",
                                        {"payee_id": 128, "reason": 500}, _DONE, _ACTION_REFUSALS),
            "/api/batches/{batch_id}/approve": _approval(),
            "/api/login": _post("Log in", "Sets the HttpOnly, SameSite=Strict session cookie; answers the CSRF token that state-changing requests repeat in X-CSRF-Token. Only application/json is accepted.",
                                {"name": 64, "password": 1024}, _json("Session", "the session"),
                                {"401": "wrong user name or password", "415": "not sent as application/json", "429": "5 failed logins within a minute for the user or from the address", "503": "the ledger cannot be read"}),
            "/api/logout": _post("Log out", "Ends the session. Needs the session's X-CSRF-Token header.", None, {"description": "logged out", "content": {"application/json": {"schema": {"type": "object"}}}},
                                 {"401": "not logged in", "403": "the CSRF header missing or wrong"}),
            "/openapi.json": _get("This document", "OpenAPI 3.1.", {"description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}, ledger=False),
            "/metrics": _get(
                "Prometheus metrics",
                "Text exposition 0.0.4: subsidy_granted_fen_total{clause,fiscal_year}, subsidy_budget_fen, subsidy_budget_remaining_fen, subsidy_ledger_events_total{topic,result}, subsidy_ledger_decisions_total{outcome,clause}, subsidy_ledger_rejections_total{reason}, subsidy_ledger_record_delay_seconds (histogram), subsidy_console_ledger_up, subsidy_console_worker_up, and every family scraped from the workers with a `worker` label (consumer lag, events per topic, the workers' own latency histograms).",
                {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                ledger=False,
            ),
            "/healthz": _get("Liveness and ledger reachability", "200 with {ok: true} when the ledger can be read, 503 otherwise.", {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "SUBSIDY_CONSOLE_ADMIN_TOKEN: the break-glass admin, each use logged."},
                "session": {"type": "apiKey", "in": "cookie", "name": "subsidy_session", "description": "from POST /api/login; a POST also repeats its CSRF token in X-CSRF-Token"},
            },
        },
    }
