"""Helpers shared by the benchmarks: timing, a PostgreSQL server (given, or a private cluster) and
throwaway databases on it, run directories, results.

Run a benchmark from the repository root, e.g. ``python bench/bench_ledger.py --n 20000``
or ``python -m bench.bench_ledger``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa

#: a PostgreSQL server the benchmarks may use (fresh databases are created on it, then dropped);
#: unset, each benchmark starts a private cluster of its own (``postgres_server``)
PG_URL_ENV = "SUBSIDY_BENCH_PG_URL"
PG_URL_HELP = f"PostgreSQL server (a fresh database is created per run); default ${PG_URL_ENV}, else a private cluster started and removed by the run"


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timer:
    """Wall-clock seconds (``time.perf_counter``) of a ``with`` block."""

    seconds: float = 0.0
    _started: float = field(default=0.0, repr=False)

    def __enter__(self) -> "Timer":
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self._started


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- databases -------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(url: str | None = None, log: Callable[[str], None] = lambda line: None) -> Iterator[str]:
    """A PostgreSQL server URL: ``url``, else ``$SUBSIDY_BENCH_PG_URL``, else a private cluster of
    the installed PostgreSQL (bench/private_postgres.py: a temporary directory, a free loopback
    port, fsync on as a stock server) started here and removed when the block ends."""
    url = url or os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    from bench.private_postgres import NOT_INSTALLED, PrivatePostgres, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit(NOT_INSTALLED)
    server = PrivatePostgres(bin_dir, fsync=True)
    try:
        server.init()
        server.start()
        log(f"PostgreSQL: a private cluster on port {server.port} ({bin_dir}), removed after the run")
        yield server.url
    finally:
        server.remove()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "bench") -> Iterator[str]:
    """Create an empty database on the server of ``server_url``; yield its URL; drop it afterwards."""
    base = sa.make_url(server_url)
    if base.get_backend_name() != "postgresql":
        raise SystemExit(f"benchmarks need a PostgreSQL server URL, not {base.render_as_string(hide_password=True)!r}")
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def server_version(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar_one())
    finally:
        engine.dispose()


# -- run directories -----------------------------------------------------------------------


def in_run_directory(prefix: str, run: Callable[[Path], int], given: str | None = None) -> int:
    """``run(directory)`` in a fresh temporary directory, removed afterwards if the run passed.

    A run keeps its generated inputs, broker and worker logs and RocksDB state there: a soak's
    come to hundreds of MiB, too much to leave in /tmp after every run. A run that raised, was
    interrupted or returned non-zero keeps its directory and says where, because its logs are what
    explains it; so does a directory the user named (``given``), which may hold inputs to reuse.
    """
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return run(path)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    code = 1
    try:
        code = run(path)
        return code
    finally:
        if code == 0:
            shutil.rmtree(path, ignore_errors=True)
        else:
            print(f"{prefix.rstrip('-')}: the run did not pass; its inputs and logs are kept in {path}", file=sys.stderr)


def run_with_postgres(args: Any, prefix: str, run: Callable[[Path, Callable[..., None]], int], given: str | None = None) -> int:
    """A bench's main: ``run(directory, log)`` in a run directory (``in_run_directory``) with
    ``args.pg_url`` set to a PostgreSQL server (``postgres_server``); ``log`` prints to stderr
    unless ``args.json``."""
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    with postgres_server(args.pg_url, log) as server:
        args.pg_url = server
        return in_run_directory(prefix, lambda workdir: run(workdir, log), given=given)


# -- results ---------------------------------------------------------------------------------


def environment(url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import psycopg

        out["psycopg"] = psycopg.__version__
    except ImportError:  # pragma: no cover
        pass
    out["sqlalchemy"] = sa.__version__
    if url is not None:
        out["postgresql"] = server_version(url)
    return out


def emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    """Print the human lines, or the result as one JSON document (for the README)."""
    if as_json:
        json.dump(result, sys.stdout, indent=2, sort_keys=False, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)
