"""A PostgreSQL server of one's own: a throwaway cluster (``initdb`` in a temporary directory,
trust auth, a free loopback port and a private socket directory) of the installed PostgreSQL,
removed afterwards. The test session runs one (tests/conftest.py); a fault test runs another that
it can crash and restart; a benchmark given no server URL runs one (bench/common.py,
``postgres_server``). As root, the cluster belongs to the ``postgres`` user (PostgreSQL refuses to
run as root). Nothing here touches a server it did not start.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.loopback import free_port

NOT_INSTALLED = ("PostgreSQL is not installed (no initdb in $PG_BIN, on PATH or in /usr/lib/postgresql/*/bin): "
                 "run `make test`, which installs it, or apt-get install postgresql (a benchmark also takes "
                 "--pg-url or $SUBSIDY_BENCH_PG_URL, a server of yours)")


def find_bin_dir() -> Path | None:
    """Directory of initdb/pg_ctl: $PG_BIN, PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    candidates = [os.environ.get("PG_BIN", "")]
    on_path = shutil.which("pg_ctl")
    candidates.append(os.path.dirname(on_path) if on_path else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if directory and os.access(os.path.join(directory, "initdb"), os.X_OK):
            return Path(directory)
    return None


class PrivatePostgres:
    """``fsync=False`` (the tests): commits are not flushed to disk, a crash of the machine loses
    them; ``True`` (the benchmarks): as a stock server, so that a commit costs what it costs there."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False):
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="subsidy-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as_user, str(self.bin_dir / tool), *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> "PrivatePostgres":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: no checkpoint, open transactions cut, recovery at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
