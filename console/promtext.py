"""Prometheus text exposition (format 0.0.4): a small parser and writer, no dependencies.

The console reads the workers' ``/metrics`` with :func:`parse` and writes its own with
:class:`Exposition`. The parser is lenient about what it does not need (timestamps, ``# EOF``,
unknown comments) and strict about what it does: a sample line it cannot read raises
:class:`PromParseError` naming the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_METRIC_NAME = re.compile(rf"^{_NAME}$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "_created"), "counter": ("_total", "_created")}


class PromParseError(ValueError):
    pass


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), "\\" + m.group(1)), text)


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(text: str, line_no: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if not match:
            raise PromParseError(f"line {line_no}: cannot read labels {{{text}}}")
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    return labels


def _value(text: str, line_no: int) -> float:
    try:
        return float(text)  # accepts NaN, +Inf, -Inf
    except ValueError:
        raise PromParseError(f"line {line_no}: {text!r} is not a number") from None


def _family_of(sample_name: str, families: dict[str, Family]) -> Family | None:
    if sample_name in families:
        return families[sample_name]
    for kind, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            if sample_name.endswith(suffix):
                family = families.get(sample_name[: -len(suffix)])
                if family is not None and family.type in (kind, "untyped"):
                    return family
    return None


def parse(text: str) -> dict[str, Family]:
    """Families by name, in the order they appear."""
    families: dict[str, Family] = {}
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].strip().split(None, 2)
            if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
                name = parts[1]
                family = families.setdefault(name, Family(name))
                rest = parts[2] if len(parts) > 2 else ""
                if parts[0] == "HELP":
                    family.help = _unescape(rest)
                else:
                    family.type = rest.strip() if rest.strip() in TYPES else "untyped"
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise PromParseError(f"line {line_no}: not a sample: {raw[:120]!r}")
        name, label_text, value_text, _timestamp = match.groups()
        sample = Sample(name, _labels(label_text or "", line_no), _value(value_text, line_no))
        family = _family_of(name, families)
        if family is None:
            family = families.setdefault(name, Family(name))
        family.samples.append(sample)
    return families


def format_value(value: float | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Exposition:
    """Builds a text exposition; one HELP/TYPE block per family, families in insertion order."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def family(self, name: str, type_: str, help_: str) -> Family:
        if not _METRIC_NAME.match(name) or type_ not in TYPES:
            raise ValueError(f"bad metric family {name!r} {type_!r}")
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(name, type_, help_)
        return family

    def add(self, name: str, type_: str, help_: str, value: float | int, labels: dict[str, str] | None = None, sample_name: str | None = None) -> None:
        family = self.family(name, type_, help_)
        for key in labels or {}:
            if not _LABEL_NAME.match(key):
                raise ValueError(f"bad label name {key!r}")
        family.samples.append(Sample(sample_name or name, dict(labels or {}), value))

    def merge(self, family: Family, extra_labels: dict[str, str]) -> None:
        """Add a scraped family's samples (with extra labels); skipped if a family of another type has the name."""
        mine = self.families.get(family.name)
        if mine is None:
            mine = self.families[family.name] = Family(family.name, family.type, family.help)
        elif mine.type != family.type:
            return
        for sample in family.samples:
            mine.samples.append(Sample(sample.name, {**sample.labels, **extra_labels}, sample.value))

    def render(self) -> str:
        out: list[str] = []
        for family in self.families.values():
            if family.help:
                out.append(f"# HELP {family.name} {_escape_help(family.help)}")
            out.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                if sample.labels:
                    inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sample.labels.items())
                    out.append(f"{sample.name}{{{inner}}} {format_value(sample.value)}")
                else:
                    out.append(f"{sample.name} {format_value(sample.value)}")
        return "\n".join(out) + "\n"
