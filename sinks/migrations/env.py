"""Alembic environment of the ledger.

Used two ways: by ``Ledger.open`` / ``subsidy ledger init`` (which pass an open connection in
``config.attributes["connection"]``), and by a plain ``alembic`` command with
``-x url=...`` or ``sqlalchemy.url`` set.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

VERSION_TABLE = "ledger_alembic_version"

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("ledger migrations: pass -x url=postgresql+psycopg://... or set sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
