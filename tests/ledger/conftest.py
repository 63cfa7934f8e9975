from __future__ import annotations

import pytest

from bench.common import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger_url(request, tmp_path):
    """A URL of an empty ledger database, on SQLite and on PostgreSQL (a fresh database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    with fresh_database(request.getfixturevalue("postgres_url"), prefix="ledger") as url:
        yield url
