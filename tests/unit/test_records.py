"""The engine's typed records (rules/records.py) against the wire contract (schemas/outputs.py).

Here, structurally: every field of a pydantic model is a field of its record, in the model's order,
with a type the model's JSON Schema accepts (a record's ``int`` fen where the wire has a money
string). Every scenario case (tests/scenarios/conftest.py) also validates each record's
``to_wire()`` with the model and reads it back with ``from_wire`` unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from typing import Any, Literal, Union

import pytest

from rules import records
from rules.money import format_fen
from schemas.outputs import MONEY_PATTERN, NON_NEGATIVE_MONEY_PATTERN, Decision, DisbursementInstruction
from tests.unit.test_contract import RESULT

PAIRS = [(records.Decision, Decision), (records.Instruction, DisbursementInstruction)]
MONEY_PATTERNS = {MONEY_PATTERN, NON_NEGATIVE_MONEY_PATTERN}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]] | None:
    return schema.get("anyOf") or schema.get("oneOf")


def problems(record_type: Any, schema: dict[str, Any], defs: dict[str, Any], where: str) -> list[str]:
    """Why values of ``record_type``, put on the wire, would not fit ``schema`` (empty: they fit)."""
    schema = _resolve(schema, defs)
    origin = typing.get_origin(record_type)
    if origin in (Union, types.UnionType):
        return [p for member in typing.get_args(record_type) for p in problems(member, schema, defs, where)]
    if origin is Literal and len(typing.get_args(record_type)) > 1:  # each value must fit
        return [p for value in typing.get_args(record_type) for p in problems(Literal[value], schema, defs, where)]
    alternatives = _alternatives(schema)
    if alternatives is not None:
        found = [problems(record_type, alternative, defs, where) for alternative in alternatives]
        if any(not p for p in found):
            return []
        objects = [_resolve(a, defs) for a in alternatives]
        namesake = [p for p, o in zip(found, objects) if o.get("title") == getattr(record_type, "__name__", None)]
        if namesake:
            return namesake[0]
        if dataclasses.is_dataclass(record_type):  # one record for a union of models (Party): field by field
            merged = {"type": "object", "properties": {name: {"anyOf": [o["properties"].get(name, {"not": {}}) for o in objects]} for o in objects for name in o["properties"]}}
            return problems(record_type, merged, defs, where)
        return [f"{where}: {record_type} fits none of {[a.get('$ref') or a.get('type') for a in alternatives]}"]
    kind = schema.get("type")
    if record_type is type(None):
        return [] if kind == "null" else [f"{where}: None where the wire has {kind}"]
    if origin is Literal:
        return [p for value in typing.get_args(record_type) for p in _literal_problems(value, schema, where)]
    if record_type is int:
        if kind == "integer" or (kind == "string" and schema.get("pattern") in MONEY_PATTERNS):
            return []
        return [f"{where}: int where the wire has {schema}"]
    if record_type is str:
        if kind == "string" and schema.get("pattern") not in MONEY_PATTERNS:
            return []
        return [f"{where}: str where the wire has {schema} (money is int fen in a record)"]
    if origin is tuple:
        item, ellipsis = typing.get_args(record_type)
        assert ellipsis is Ellipsis, f"{where}: a record's sequence is tuple[X, ...]"
        return [f"{where}: a tuple where the wire has {kind}"] if kind != "array" else problems(item, schema["items"], defs, f"{where}[]")
    if dataclasses.is_dataclass(record_type):
        if "properties" not in schema:
            return [f"{where}: a record where the wire has {kind}"]
        return _record_problems(record_type, schema, defs, where)
    return [f"{where}: {record_type} has no wire form here"]


def _literal_problems(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    wire = format_fen(value) if isinstance(value, int) and schema.get("type") == "string" else value
    allowed = [schema["const"]] if "const" in schema else schema.get("enum")
    if allowed is not None:
        return [] if wire in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if "pattern" in schema and not (isinstance(wire, str) and re.search(schema["pattern"], wire)):
        return [f"{where}: {value!r} does not match {schema['pattern']}"]
    return []


def _record_problems(record_type: Any, schema: dict[str, Any], defs: dict[str, Any], where: str) -> list[str]:
    hints = typing.get_type_hints(record_type)
    names = [f.name for f in dataclasses.fields(record_type) if f.init]  # not the cached wire form
    wire_names = list(schema["properties"])
    if names != wire_names:
        return [f"{where}: the record's fields {names} are not the model's {wire_names}"]
    return [p for name in names for p in problems(hints[name], schema["properties"][name], defs, f"{where}.{name}")]


@pytest.mark.parametrize("record_type,model", PAIRS, ids=lambda x: x.__name__)
def test_every_field_of_the_model_is_a_field_of_the_record_with_a_type_the_wire_accepts(record_type, model):
    schema = model.model_json_schema()
    assert problems(record_type, schema, schema.get("$defs", {}), record_type.__name__) == []


def test_the_check_finds_a_missing_field_and_an_amount_kept_as_text():
    schema = Decision.model_json_schema()
    defs = schema["$defs"]

    @dataclasses.dataclass(frozen=True)
    class Step:
        cap: str
        scope: str
        kind: Literal["amount"]
        limit: str  # money as text: refused
        used_before: int
        room_before: int

    found = problems(Step, defs["AmountCapStep"], defs, "Step")
    assert found and "granted_after" in found[0]
    narrowed = {**defs["AmountCapStep"], "properties": {k: v for k, v in defs["AmountCapStep"]["properties"].items() if k != "granted_after"}}
    assert problems(Step, narrowed, defs, "Step") == ["Step.limit: str where the wire has " + str(narrowed["properties"]["limit"]) + " (money is int fen in a record)"]
    assert problems(Literal["withdrawn"], schema["properties"]["outcome"], defs, "outcome")


def _typed_records():
    decisions, instructions, _ = RESULT
    return [records.Decision.from_wire(d) for d in decisions] + [records.Instruction.from_wire(i) for i in instructions]


def test_the_wire_form_is_byte_for_byte_what_it_was_read_from():
    """RESULT holds every outcome and instruction kind; the state keeps this wire form, and a
    redelivered claim re-emits it through from_wire and to_wire."""
    decisions, instructions, _ = RESULT
    for wire in decisions + instructions:
        record = (records.Decision if "decision_id" in wire else records.Instruction).from_wire(json.loads(json.dumps(wire)))
        assert json.dumps(record.to_wire(), ensure_ascii=False) == json.dumps(wire, ensure_ascii=False)


def test_a_decision_made_before_v1_1_is_re_emitted_without_late_by():
    """Its bytes and its content hash in the ledger stay those already booked; a null late_by stays."""
    decisions, _, _ = RESULT
    assert decisions[0]["late_by"] is None
    before_v1_1 = {key: value for key, value in decisions[0].items() if key != "late_by"}
    record = records.Decision.from_wire(before_v1_1)
    assert record.late_by is None and record == records.Decision.from_wire(decisions[0])
    assert json.dumps(record.to_wire(), ensure_ascii=False) == json.dumps(before_v1_1, ensure_ascii=False)
    assert records.Decision.from_wire(decisions[0]).to_wire() == decisions[0]


def test_records_are_immutable_and_built_with_named_fields():
    record = _typed_records()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.granted = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        records.Party("913", "enterprise", "名")  # type: ignore[misc]
