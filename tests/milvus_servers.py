"""Real Milvus servers for tests, each on a free loopback port in a temporary directory, stopped at the end:

- `lite_server`: Milvus Lite's own gRPC server (`server_fixtures.lite_milvus_server`): the Milvus 2.5 engine over
  TCP, whose "local mode" accepts only FLAT, IVF_FLAT and AUTOINDEX dense indexes.
- `milvus23_server`: `milvus.default_server` from the PyPI package `milvus` 2.3.5, a real Milvus 2.3.5 standalone
  (etcd and storage embedded) that has no sparse vectors and no BM25 function. About 10-20 s to start.

`store_uri` runs a test once per store: embedded Milvus Lite (None: the file in the data directory), the Lite
server, and Milvus 2.3.5 (marked slow). Registered in conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server_fixtures import free_port, lite_milvus_server


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory) -> Iterator[str]:
    """Milvus Lite's gRPC server on 127.0.0.1 for the session; yields its URI."""
    with lite_milvus_server(tmp_path_factory.mktemp("milvus-lite-server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def milvus23_server(tmp_path_factory) -> Iterator[str]:
    """Milvus 2.3.5 standalone from the `milvus` wheel (`milvus.default_server`); yields its URI."""
    milvus = pytest.importorskip("milvus", reason="pip install milvus==2.3.5 (the test extra) for Milvus 2.3")
    server = milvus.default_server
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-2.3")))
    server.listen_port = free_port()
    server.start()                           # returns once its health endpoint answers
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
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
