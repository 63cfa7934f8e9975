"""The layers of docs/DESIGN.md hold in the source: the pure core (rules/) imports no Kafka and no
database, and no package of the core or the wire contract depends on the other both ways.

Read with ``ast`` (every ``import`` anywhere in a module, in functions and under
``TYPE_CHECKING`` too), so an import that only runs late still counts."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"rules", "schemas", "sinks", "streams", "subsidy", "console", "bench", "tests"}
# The core may use the standard library and these, nothing else (no Kafka, no database).
CORE_THIRD_PARTY = {"pydantic", "yaml"}
KAFKA_OR_DATABASE = {"kafka", "aiokafka", "faust", "mode", "confluent_kafka", "sqlalchemy", "alembic", "psycopg", "psycopg2",
                     "asyncpg", "sqlite3", "rocksdict", "rocksdb"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules one file imports (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def package_graph(packages: list[str]) -> dict[str, set[str]]:
    """Top-level package -> the other first-party top-level packages its modules import."""
    graph: dict[str, set[str]] = {p: set() for p in packages}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[package].update(name.split(".")[0] for name in imports_of(path) if name.split(".")[0] in FIRST_PARTY)
        graph[package].discard(package)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"rules": {"schemas"}, "schemas": {"rules"}}) == ["rules", "schemas", "rules"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"schemas": {"rules"}, "rules": set()}) is None


def test_no_import_cycle_between_rules_and_schemas():
    graph = package_graph(["rules", "schemas"])
    assert find_cycle(graph) is None, f"import cycle between packages: {' -> '.join(find_cycle(graph) or [])}"
    assert graph == {"rules": set(), "schemas": {"rules"}}  # the wire layer depends on the core, never the reverse


def test_no_import_cycle_between_modules_of_rules_and_schemas():
    modules = {module_name(p): p for package in ("rules", "schemas") for p in (ROOT / package).rglob("*.py")}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    assert find_cycle(graph) is None, f"import cycle between modules: {' -> '.join(find_cycle(graph) or [])}"


def test_the_core_imports_no_kafka_no_database_and_no_other_layer():
    problems = []
    for path in sorted((ROOT / "rules").rglob("*.py")):
        for name in sorted(imports_of(path)):
            top = name.split(".")[0]
            if top in {"__future__", "rules"} or (top in sys.stdlib_module_names and top not in KAFKA_OR_DATABASE) or top in CORE_THIRD_PARTY:
                continue
            problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_the_bank_simulator_and_the_iso_20022_answers_import_no_kafka_and_no_database():
    """`subsidy bank-sim` and the reading of the bank's files run without a ledger."""
    problems = []
    for path in (ROOT / "sinks" / "bank_sim.py", ROOT / "sinks" / "iso20022_answers.py"):
        for name in sorted(imports_of(path)):
            top = name.split(".")[0]
            if top in KAFKA_OR_DATABASE or (top in FIRST_PARTY and not name.startswith(("rules", "sinks.iso20022_answers"))):
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []
