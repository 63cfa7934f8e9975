"""Policy as data: load a policy file into immutable clauses with dated values.

A malformed file is refused with ``file:line: what is wrong``, so the person editing a
rate or a budget knows exactly where to look. Nothing here knows Kafka or a database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar, cast

import yaml

from rules.money import AmountError, Rate, parse_amount

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy" / "chengdu-ai-2025.yaml"
# the city's programme and 成都高新区's run together (issue 28), as load_policy takes them
SHIPPED_PROGRAMMES = os.pathsep.join(str(DEFAULT_POLICY_PATH.parent / name) for name in ("chengdu-ai-2025.yaml", "chengdu-high-tech-zone-2025.yaml"))

T = TypeVar("T")
BASES = ("stated", "assumed")
CAP_FIELDS = ("beneficiary", "subject")
PERIODS = ("fiscal-year", "ever")
PARTY_KINDS = ("enterprise", "person", "team")
PAID_PARTIES = ("beneficiary", "provider")
ENTITLEMENT_KINDS = ("share", "fixed", "by-grade")
TOPICS_WITH_PROVIDER = {"compute-purchases": "provider", "model-invoices": "vendor"}
BASE_FIELDS = {"amount", "base_amount"}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class DatedValue(Generic[T]):
    start: dt.date
    value: T
    basis: str
    reference: str


@dataclass(frozen=True, slots=True)
class Dated(Generic[T]):
    """A parameter whose value changes on dates; ``at(day)`` is the value in force that day."""

    name: str
    values: tuple[DatedValue[T], ...]

    def at(self, day: dt.date) -> T | None:
        found = None
        for entry in self.values:  # sorted by start, and short: a linear scan is fastest
            if entry.start > day:
                break
            found = entry.value
        return found


@dataclass(frozen=True, slots=True)
class Cap:
    id: str
    per: tuple[str, ...]
    period: str
    amount: Dated[int] | None  # fen
    count: Dated[int] | None
    distinct: str | None = None  # a count cap that counts distinct values of this field, not paid claims


@dataclass(frozen=True, slots=True)
class Entitlement:
    kind: str
    base: str | None = None
    rate: Dated[Rate] | None = None
    amount: Dated[int] | None = None
    grades: dict[str, Dated[int]] = field(default_factory=dict)
    other_grades: Dated[int] | None = None


@dataclass(frozen=True, slots=True)
class Clause:
    id: str
    article: int
    title: str
    text: str
    topic: str
    award: str | None
    paid_party: Dated[str]
    payee_kinds: frozenset[str]
    entitlement: Entitlement
    caps: tuple[Cap, ...]
    allowed_lateness: Dated[dt.timedelta]  # how long after its occurred_at a claim may still arrive in order
    # programme window: a claim before ``starts`` or after the end in force is rejected
    starts: dt.date = dt.date.min  # the first day any of its dated values applies
    ends: Dated[dt.date] | None = None  # the last day a claim may have happened on
    # 就高不重复 (issue 28): clauses of one project group, in any loaded programme, fund one
    # payee's project (project_ref) once, under the clause that pays most
    project_group: str | None = None


@dataclass(frozen=True, slots=True)
class CombinedCap:
    """A cap shared by clauses of several programmes (city and district compute vouchers together)."""

    cap: Cap
    clauses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: str
    version: str
    title: str
    timezone: str
    sources: dict[str, frozenset[str]]
    clauses: dict[str, Clause]
    digest: str  # sha256 of the file: which exact text decided a claim
    # issue 25: how far occurred_at may be after the broker received a message (clocks disagree)
    clock_skew: Dated[dt.timedelta] | None = None
    # issue 26: how long a payment the bank rejected or returned waits for a corrected account
    # before `subsidy payments void --overdue` voids it (on the day of its last answer); none: only an operator voids
    void_unpaid_after: Dated[dt.timedelta] | None = None
    # issue 25: USCC registration-division prefixes (GB 32100 characters 3-8) whose enterprises may be paid
    registration_divisions: Dated[tuple[str, ...]] | None = None
    # issue 28: caps that clauses of this file share with clauses of another programme
    combined_caps: tuple[CombinedCap, ...] = ()
    # issue 28: several programmes run together (load_policy of a path list): this Policy is their
    # union, each clause keeps its own programme (programme_of); empty for one programme
    programmes: tuple["Policy", ...] = ()
    _programme_by_clause: dict[str, "Policy"] = field(default_factory=dict, compare=False, repr=False)

    def programme_of(self, clause_id: str) -> "Policy":
        """The programme (policy file) a clause belongs to: its policy_id, version, eligibility and budgets."""
        return self._programme_by_clause.get(clause_id, self)

    def claims_key(self, clause_id: str) -> str:
        """The key of a clause's claims on subsidy-claims (decision 0012): its project group when it
        has one, as every clause of a group shares the record of which clause funds a project, and
        the clauses of a combined cap are in one group; otherwise the clause itself."""
        clause = self.clauses.get(clause_id)
        return clause.project_group if clause is not None and clause.project_group else clause_id

    def clauses_for(self, topic: str, award: str | None = None) -> list[Clause]:
        return [c for c in self.clauses.values() if c.topic == topic and (c.award is None or c.award == award)]

    @property
    def awards(self) -> list[str]:
        return sorted(c.award for c in self.clauses.values() if c.award)


# --- YAML with line numbers ------------------------------------------------------------


class _Node(dict[Any, Any]):  # keys as YAML reads them (str, but also int, date...)
    line = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Node:
        mapping = _Node(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
        return mapping


# SafeLoader builds maps in two steps through a plain dict; build ours directly instead.
def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Node:
    return loader.construct_mapping(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    # A date-shaped value that is not a real date (2025-13-01, 2025-02-30) makes PyYAML raise
    # a bare ValueError; turn it into a marked error so the file:line: message is kept.
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a real date: {exc}", node.start_mark
        ) from None


_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


class _Reader:
    def __init__(self, path: str):
        self.path = path

    def fail(self, where: Any, message: str, key: str | None = None) -> PolicyError:
        line = getattr(where, "line", 0)
        if key is not None and isinstance(where, _Node):
            line = where.key_lines.get(key, line)
        return PolicyError(f"{self.path}:{line}: {message}")

    def mapping(self, node: Any, what: str, parent: Any = None) -> _Node:
        if not isinstance(node, _Node):
            raise self.fail(parent if parent is not None else node, f"{what} must be a mapping")
        return node

    def need(self, node: _Node, key: str, what: str) -> Any:
        if key not in node:
            raise self.fail(node, f"{what} is missing `{key}`")
        return node[key]

    def dated(self, node: _Node, key: str, what: str, convert: Callable[[Any], T]) -> Dated[T]:
        entries = self.need(node, key, what)
        if not isinstance(entries, list) or not entries:
            raise self.fail(node, f"{what}.{key} must be a list of dated values like "
                            "`- {from: 2025-08-28, value: ..., basis: stated, reference: ...}`", key)
        values = []
        for entry in entries:
            entry = self.mapping(entry, f"{what}.{key} entry", node)
            start = self.need(entry, "from", f"{what}.{key} entry")
            if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
                raise self.fail(entry, f"{what}.{key}: `from` must be a date like 2025-08-28, got {start!r}", "from")
            basis = self.need(entry, "basis", f"{what}.{key} entry")
            if basis not in BASES:
                raise self.fail(entry, f"{what}.{key}: `basis` must be one of {', '.join(BASES)}, got {basis!r}", "basis")
            reference = self.need(entry, "reference", f"{what}.{key} entry")
            if not isinstance(reference, str) or not reference.strip():
                raise self.fail(entry, f"{what}.{key}: `reference` must quote the text or name the source of the assumption", "reference")
            raw = self.need(entry, "value", f"{what}.{key} entry")
            try:
                value = convert(raw)
            except (AmountError, ValueError, TypeError) as exc:
                raise self.fail(entry, f"{what}.{key}: {exc}", "value") from None
            values.append(DatedValue(start, value, basis, reference))
        starts = [v.start for v in values]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise self.fail(node, f"{what}.{key}: dated values must be in increasing `from` order, each date once", key)
        return Dated(f"{what}.{key}", tuple(values))


def _money(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(f"money must be a quoted decimal string like \"1000000.00\", got {value!r}")
    fen = parse_amount(value)
    if fen < 0:
        raise ValueError(f"money must not be negative, got {value!r}")
    return fen


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a count must be a whole number ≥ 0, got {value!r}")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return cast(str, value)
    return convert


def _entitlement(r: _Reader, node: _Node, what: str, topic: str) -> Entitlement:
    kind = r.need(node, "kind", what)
    if kind not in ENTITLEMENT_KINDS:
        raise r.fail(node, f"{what}.kind must be one of {', '.join(ENTITLEMENT_KINDS)}, got {kind!r}", "kind")
    if kind == "share":
        base = r.need(node, "base", what)
        if base not in BASE_FIELDS:
            raise r.fail(node, f"{what}.base must name a money field of the message ({', '.join(sorted(BASE_FIELDS))}), got {base!r}", "base")
        if base == "base_amount" and topic != "award-announcements":
            raise r.fail(node, f"{what}.base: base_amount exists only on award-announcements", "base")
        return Entitlement(kind, base=base, rate=r.dated(node, "rate", what, Rate.parse))
    if kind == "fixed":
        return Entitlement(kind, amount=r.dated(node, "amount", what, _money))
    grades = r.mapping(r.need(node, "grades", what), f"{what}.grades", node)
    return Entitlement(
        kind,
        grades={name: r.dated(grades, name, f"{what}.grades", _money) for name in grades},
        other_grades=r.dated(node, "other_grades", what, _money) if "other_grades" in node else None,
    )


def _cap(r: _Reader, node: _Node, what: str) -> Cap:
    cap_id = r.need(node, "id", what)
    per = r.need(node, "per", f"{what} {cap_id}")
    if not isinstance(per, list) or any(p not in CAP_FIELDS for p in per):
        raise r.fail(node, f"cap {cap_id}: `per` must be a list drawn from {list(CAP_FIELDS)}, got {per!r}", "per")
    period = r.need(node, "period", f"cap {cap_id}")
    if period not in PERIODS:
        raise r.fail(node, f"cap {cap_id}: `period` must be one of {', '.join(PERIODS)}, got {period!r}", "period")
    if ("amount" in node) == ("count" in node):
        raise r.fail(node, f"cap {cap_id}: give exactly one of `amount` (money) or `count` (number of paid claims)")
    distinct = node.get("distinct")
    if distinct is not None and (distinct not in CAP_FIELDS or "count" not in node or distinct in per):
        raise r.fail(node, f"cap {cap_id}: `distinct` goes with a `count` cap and names a field not in `per` ({', '.join(CAP_FIELDS)})", "distinct")
    return Cap(
        id=cap_id,
        per=tuple(per),
        period=period,
        amount=r.dated(node, "amount", f"cap {cap_id}", _money) if "amount" in node else None,
        count=r.dated(node, "count", f"cap {cap_id}", _count) if "count" in node else None,
        distinct=distinct,
    )


def _clause(r: _Reader, clause_id: str, node: _Node, sources: dict[str, frozenset[str]]) -> Clause:
    what = f"clause {clause_id}"
    trigger = r.mapping(r.need(node, "trigger", what), f"{what}.trigger", node)
    topic = r.need(trigger, "topic", f"{what}.trigger")
    if topic not in sources:
        raise r.fail(trigger, f"{what}: trigger topic {topic!r} has no `sources` allow-list (known topics: {', '.join(sources)})", "topic")
    award = trigger.get("award")
    if (topic == "award-announcements") != (award is not None):
        raise r.fail(trigger, f"{what}: a trigger on award-announcements needs `award`, and only that topic has one")
    paid_party = r.dated(node, "paid_party", what, _one_of(PAID_PARTIES))
    if any(v.value == "provider" for v in paid_party.values) and topic not in TOPICS_WITH_PROVIDER:
        raise r.fail(node, f"{what}: paid_party provider needs a topic that names one ({', '.join(TOPICS_WITH_PROVIDER)})", "paid_party")
    kinds = r.need(node, "payee_kinds", what)
    if not isinstance(kinds, list) or not kinds or any(k not in PARTY_KINDS for k in kinds):
        raise r.fail(node, f"{what}.payee_kinds must be a non-empty list drawn from {list(PARTY_KINDS)}", "payee_kinds")
    caps_node = r.need(node, "caps", what)
    if not isinstance(caps_node, list):
        raise r.fail(node, f"{what}.caps must be a list", "caps")
    caps = tuple(_cap(r, r.mapping(c, f"{what} cap", node), what) for c in caps_node)
    if len({c.id for c in caps}) != len(caps):
        raise r.fail(node, f"{what}: cap ids must be unique", "caps")
    entitlement = _entitlement(r, r.mapping(r.need(node, "entitlement", what), f"{what}.entitlement", node), f"{what}.entitlement", topic)
    starts = _first_day(paid_party, entitlement, caps)
    return Clause(
        id=clause_id,
        article=int(r.need(node, "article", what)),
        title=str(r.need(node, "title", what)),
        text=str(r.need(node, "text", what)),
        topic=topic,
        award=award,
        paid_party=paid_party,
        payee_kinds=frozenset(kinds),
        entitlement=entitlement,
        caps=caps,
        allowed_lateness=_allowed_lateness(r, node, what),
        starts=starts,
        ends=_ends(r, node, what, starts),
        project_group=_project_group(r, node, what),
    )


def _project_group(r: _Reader, node: _Node, what: str) -> str | None:
    group = node.get("project_group")
    if group is not None and (not isinstance(group, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", group)):
        raise r.fail(node, f"{what}.project_group must be a name of lowercase letters, digits and hyphens, got {group!r}", "project_group")
    return group


# --- event-time order: how late a clause's claims may arrive --------------------------

_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(value: Any) -> dt.timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (``P2D``, ``PT36H``, ``PT0S``), never negative."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or value == "P":
        raise ValueError(f"must be a duration that is not negative, in ISO 8601 days/hours/minutes/seconds like P2D, PT36H or PT0S, got {value!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _allowed_lateness(r: _Reader, node: _Node, what: str) -> Dated[dt.timedelta]:
    return r.dated(node, "allowed_lateness", what, parse_duration)


# --- programme windows and who may be paid (issue 25) -------------------------------------


def _first_day(paid_party: Dated[str], entitlement: Entitlement, caps: tuple[Cap, ...]) -> dt.date:
    """The first day any figure of a clause applies: a claim from before it is not the clause's."""
    dated: list[Dated[Any] | None] = [paid_party, entitlement.rate, entitlement.amount, entitlement.other_grades, *entitlement.grades.values()]
    dated += [limit for cap in caps for limit in (cap.amount, cap.count)]
    return min(d.values[0].start for d in dated if d is not None)


def _date(value: Any) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError(f"must be a date like 2028-08-27, got {value!r}")
    return value


def _ends(r: _Reader, node: _Node, what: str, starts: dt.date) -> Dated[dt.date] | None:
    if "ends" not in node:
        return None
    ends = r.dated(node, "ends", what, _date)
    for entry in ends.values:
        if entry.value < starts:
            raise r.fail(node, f"{what}.ends: {entry.value} is before the clause's first day {starts}", "ends")
    return ends


_DIVISION_PREFIX = re.compile(r"^[0-9]{2,6}$")


def _division_prefixes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and _DIVISION_PREFIX.match(p) for p in value):
        raise ValueError(f"must be a list of quoted division-code prefixes of 2 to 6 digits like [\"5101\"], got {value!r}")
    return tuple(value)


def _registration_divisions(r: _Reader, doc: _Node) -> Dated[tuple[str, ...]] | None:
    if "eligibility" not in doc:
        return None
    eligibility = r.mapping(doc["eligibility"], "eligibility", doc)
    return r.dated(eligibility, "registration_division_prefix", "eligibility", _division_prefixes)


def _combined_caps(r: _Reader, doc: _Node) -> tuple[CombinedCap, ...]:
    """``combined_caps``: caps charged by every named clause, whichever programme it is in."""
    if "combined_caps" not in doc:
        return ()
    nodes = doc["combined_caps"]
    if not isinstance(nodes, list):
        raise r.fail(doc, "combined_caps must be a list", "combined_caps")
    combined = []
    for node in nodes:
        node = r.mapping(node, "combined cap", doc)
        cap = _cap(r, node, "combined cap")
        clauses = r.need(node, "clauses", f"combined cap {cap.id}")
        if not isinstance(clauses, list) or len(clauses) < 2 or not all(isinstance(c, str) for c in clauses):
            raise r.fail(node, f"combined cap {cap.id}: `clauses` must list the ids of two or more clauses (of any programme)", "clauses")
        combined.append(CombinedCap(cap, tuple(clauses)))
    return tuple(combined)


def load_policy(path: str | Path = DEFAULT_POLICY_PATH) -> Policy:
    """One policy file, or several programmes run together: ``path`` may list files separated by
    ``os.pathsep`` (``city.yaml:district.yaml``, as in $SUBSIDY_POLICY), loaded by :func:`combine`."""
    if isinstance(path, str) and os.pathsep in path:
        return combine([load_policy(part) for part in path.split(os.pathsep) if part])
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}:0: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(raw, str(path))


def parse_policy(raw: bytes, name: str = "<policy>") -> Policy:
    r = _Reader(name)
    try:
        doc = yaml.load(raw, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(f"{name}:{mark.line + 1 if mark else 0}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    doc = r.mapping(doc, "the policy file")
    sources_node = r.mapping(r.need(doc, "sources", "the policy file"), "sources", doc)
    sources = {}
    for topic, names in sources_node.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise r.fail(sources_node, f"sources.{topic} must be a list of system names", topic)
        sources[topic] = frozenset(names)
    clauses_node = r.mapping(r.need(doc, "clauses", "the policy file"), "clauses", doc)
    clauses = {cid: _clause(r, cid, r.mapping(c, f"clause {cid}", clauses_node), sources) for cid, c in clauses_node.items()}
    awards = [c.award for c in clauses.values() if c.award]
    if len(awards) != len(set(awards)):
        raise r.fail(clauses_node, "two clauses are triggered by the same award")
    for key in ("policy_id", "version", "title", "timezone"):
        if not isinstance(r.need(doc, key, "the policy file"), str):
            raise r.fail(doc, f"`{key}` must be a string (quote it)", key)
    return Policy(
        policy_id=doc["policy_id"],
        version=doc["version"],
        title=doc["title"],
        timezone=doc["timezone"],
        sources=sources,
        clauses=clauses,
        digest=hashlib.sha256(raw).hexdigest(),
        clock_skew=r.dated(doc, "clock_skew", "the policy file", parse_duration) if "clock_skew" in doc else None,
        void_unpaid_after=r.dated(doc, "void_unpaid_after", "the policy file", parse_duration) if "void_unpaid_after" in doc else None,
        registration_divisions=_registration_divisions(r, doc),
        combined_caps=_combined_caps(r, doc),
    )


def combine(programmes: list[Policy]) -> Policy:
    """Several programmes as one Policy: every clause, each answering to its own programme.

    Clause ids are unique across programmes (the running state and the ledger's budget accounts
    name a clause by its id); the programmes share a time zone (one fiscal year) and, for each
    topic, their source allow-lists are kept per programme by ``programme_of(clause).sources``."""
    if len(programmes) == 1:
        return programmes[0]
    clauses: dict[str, Clause] = {}
    owner: dict[str, Policy] = {}
    for programme in programmes:
        if programme.timezone != programmes[0].timezone:
            raise PolicyError(f"{programme.policy_id}:0: time zone {programme.timezone} differs from {programmes[0].policy_id}'s {programmes[0].timezone}; programmes run together share one fiscal year")
        for clause_id, clause in programme.clauses.items():
            if clause_id in clauses:
                raise PolicyError(f"{programme.policy_id}:0: clause {clause_id!r} is also a clause of {owner[clause_id].policy_id}; clause ids must be unique across the programmes run together")
            clauses[clause_id] = clause
            owner[clause_id] = programme
    awards = [c.award for c in clauses.values() if c.award]
    if len(awards) != len(set(awards)):
        raise PolicyError(f"{'+'.join(p.policy_id for p in programmes)}:0: two clauses of the programmes are triggered by the same award")
    combined_caps = tuple(c for p in programmes for c in p.combined_caps)
    for combined in combined_caps:
        groups = {clauses[c].project_group for c in combined.clauses if c in clauses}
        if len(groups) != 1 or None in groups:
            raise PolicyError(f"combined cap {combined.cap.id}: its clauses {', '.join(combined.clauses)} must share one project_group, "
                              "so that their claims are decided in one place (decision 0012)")
    sources: dict[str, frozenset[str]] = {}
    for programme in programmes:
        for topic, names in programme.sources.items():
            sources[topic] = sources.get(topic, frozenset()) | names
    return Policy(
        policy_id="+".join(p.policy_id for p in programmes),
        version="+".join(p.version for p in programmes),
        title=" + ".join(p.title for p in programmes),
        timezone=programmes[0].timezone,
        sources=sources,
        clauses=clauses,
        digest=hashlib.sha256("".join(p.digest for p in programmes).encode()).hexdigest(),
        clock_skew=programmes[0].clock_skew,
        combined_caps=combined_caps,
        programmes=tuple(programmes),
        _programme_by_clause=owner,
    )
