"""The tables are defined once (sinks/ledger/schema.py), and the migrations, which are history and
do not import them, create exactly those: a database made by the migrations and one made from the
definitions read back the same, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bench.common import fresh_database
from sinks.ledger import make_engine, upgrade_schema
from sinks.ledger.schema import APPEND_ONLY, GENESIS_HASH, chain_head, metadata


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def two_urls(request, tmp_path):
    """Two empty databases of one kind: one for the migrations, one for the definitions."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite'}", f"sqlite:///{tmp_path / 'defined.sqlite'}"
        return
    postgres_url = request.getfixturevalue("postgres_url")
    with fresh_database(postgres_url, prefix="migrated") as migrated, fresh_database(postgres_url, prefix="defined") as defined:
        yield migrated, defined


def read_back(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """Every ledger table as the database describes it (the migrations' version table left out)."""
    inspector = sa.inspect(engine)
    out: dict[str, dict[str, Any]] = {}
    for table in sorted(set(inspector.get_table_names()) - {"ledger_alembic_version"}):
        out[table] = {
            "columns": [(c["name"], repr(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(repr(sorted(fk.items())) for fk in inspector.get_foreign_keys(table)),
            "unique": sorted(repr(sorted(u.items())) for u in inspector.get_unique_constraints(table)),
            "checks": sorted((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
        }
    return out


def append_only_tables(engine: sa.Engine) -> set[str]:
    """Tables with a trigger (the migrations' only triggers refuse changes to facts)."""
    if engine.dialect.name == "postgresql":
        query = "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
    else:
        query = "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger'"
    with engine.connect() as conn:
        return {name for (name,) in conn.exec_driver_sql(query)}


def test_the_migrations_create_exactly_the_tables_schema_py_defines(two_urls):
    migrated_url, defined_url = two_urls
    migrated, defined = make_engine(migrated_url), make_engine(defined_url)
    try:
        upgrade_schema(migrated)
        metadata.create_all(defined)
        by_migrations, by_definitions = read_back(migrated), read_back(defined)
        assert set(by_migrations) == set(metadata.tables)
        assert by_migrations == by_definitions
        # the comparison saw what the definitions hold, so it compared something
        for table in metadata.sorted_tables:
            described = by_migrations[table.name]
            assert [name for name, _, _ in described["columns"]] == [c.name for c in table.columns]
            assert [name for name, _ in described["checks"]] == sorted(c.name for c in table.constraints if isinstance(c, sa.CheckConstraint))
            assert [name for name, _, _ in described["indexes"] if name.startswith("ix_")] == sorted(str(i.name) for i in table.indexes)
            assert len(described["foreign keys"]) == len(table.foreign_keys)
        assert append_only_tables(migrated) == set(APPEND_ONLY)
        with migrated.connect() as conn:
            assert conn.execute(sa.select(chain_head)).all() == [(1, 0, GENESIS_HASH)]
    finally:
        migrated.dispose()
        defined.dispose()
