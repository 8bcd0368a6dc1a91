"""A real, throwaway PostgreSQL for tests: `initdb` in a temp dir, `pg_ctl start` on a free loopback port with its
socket in that dir, one fresh database per test, everything stopped and removed after.

The Debian `postgresql` package provides the binaries (/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
run as root, so when the tests run as root the cluster belongs to the `postgres` user (`runuser -u postgres`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server_fixtures import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (with initdb), or one on PATH; None when absent."""
    candidates = sorted(glob.glob(PG_BIN_GLOB), key=lambda path: int(Path(path).parent.name), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@dataclass
class PostgresCluster:
    bin_dir: Path
    directory: Path
    port: int
    user: str = "postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({completed.returncode}): {completed.stderr or completed.stdout}")
        return completed

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server at once (no checkpoint), as when its machine dies; a stopped cluster stays stopped."""
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[PostgresCluster]:
    """A running cluster for the block's duration (fsync off: test data need not survive a power cut)."""
    directory = Path(tempfile.mkdtemp(prefix="tecorag-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, user="postgres")
    cluster = PostgresCluster(bin_dir=bin_dir, directory=directory, port=free_port())
    data = directory / "data"
    try:
        cluster._run("initdb", "-D", str(data), "-U", cluster.user, "-A", "trust", "-E", "UTF8", "--no-sync",
                     "--locale=C.UTF-8")
        options = (f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        cluster._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "server.log"), "-w",
                     "-t", "60", "start", timeout=90)
        yield cluster
    finally:
        try:
            cluster.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(directory, ignore_errors=True)
