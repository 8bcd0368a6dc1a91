"""Real Milvus servers for tests, each on a free loopback port in a temporary directory, stopped at the end:

- `lite_server`: Milvus Lite's own gRPC server (`milvus_lite.server.Server` with an address): the Milvus 2.5 engine
  over TCP, whose "local mode" accepts only FLAT, IVF_FLAT and AUTOINDEX dense indexes.
- `milvus23_server`: `milvus.default_server` from the PyPI package `milvus` 2.3.5, a real Milvus 2.3.5 standalone
  (etcd and storage embedded) that has no sparse vectors and no BM25 function. About 10-20 s to start.

`store_uri` runs a test once per store: embedded Milvus Lite (None: the file in the data directory), the Lite
server, and Milvus 2.3.5 (marked slow). Registered in conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(uri: str, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """Until a client can list collections: the process may accept connections before it serves."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = MilvusClient(uri=uri, timeout=5)
            client.list_collections()
            client.close()
            return
        except Exception as error:  # not up yet: connection refused, unavailable
            if time.monotonic() > deadline:
                raise TimeoutError(f"Milvus at {uri} did not answer within {timeout_s}s: {error}") from error
            time.sleep(0.2)


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory) -> Iterator[str]:
    """Milvus Lite's gRPC server on 127.0.0.1; yields its URI."""
    from milvus_lite.server import Server

    folder: Path = tmp_path_factory.mktemp("milvus-lite-server")
    port = free_port()
    server = Server(str(folder / "milvus.db"), address=f"127.0.0.1:{port}")
    if not (server.init() and server.start()):
        pytest.fail(f"Milvus Lite server did not start on port {port}")
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(uri)
        yield uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus23_server(tmp_path_factory) -> Iterator[str]:
    """Milvus 2.3.5 standalone from the `milvus` wheel (`milvus.default_server`); yields its URI."""
    milvus = pytest.importorskip("milvus", reason="pip install milvus==2.3.5 (the test extra) for Milvus 2.3")
    server = milvus.default_server
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-2.3")))
    server.listen_port = free_port()
    server.start()                           # waits for its health endpoint
    uri = f"http://127.0.0.1:{server.listen_port}"
    try:
        wait_until_serving(uri)
        yield uri
    finally:
        server.stop()


STORES = ["embedded", "lite-server", pytest.param("milvus-2.3", marks=pytest.mark.slow)]


@pytest.fixture(params=STORES)
def store_uri(request) -> str | None:
    """The vector-store URI of one store kind: None for embedded Milvus Lite in the data directory."""
    if request.param == "embedded":
        return None
    if request.param == "lite-server":
        return request.getfixturevalue("lite_server")
    return request.getfixturevalue("milvus23_server")
