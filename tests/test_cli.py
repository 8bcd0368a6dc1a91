"""The command line as a user meets it, in subprocesses: clean errors, nothing printed but what was asked for,
no model or Milvus for commands that need none, Milvus Lite's logs kept under TECORAG_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

THIRD_PARTY_NOISE = ("pkg_resources", "Building prefix dict", "Loading model", "Prefix dict", "WARNING", "INFO",
                     "Traceback")


@pytest.fixture(scope="module")
def home_with_kb(tmp_path_factory) -> Path:
    """A data directory with one small knowledge base, ingested by the CLI; TMPDIR is private to see what leaks."""
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    docs.mkdir()
    (docs / "部署.md").write_text("# 部署\n\nAttu 是一个多合一的 Milvus GUI 管理工具。\n", encoding="utf-8")
    (docs / "LICENSE").write_text("BSD 3-Clause License\nCopyright (c) Tecorigin\n", encoding="utf-8")
    (root / "tmp").mkdir()
    result = run_cli(root / "home", "ingest", str(docs), "--kb", "docs", TMPDIR=str(root / "tmp"))
    assert result.returncode == 0, result.stderr
    assert "indexed 2, unchanged 0, failed 0" in result.stderr        # LICENSE has no extension: read as text
    assert not any(noise in result.stderr for noise in THIRD_PARTY_NOISE), result.stderr
    return root


def test_ask_prints_the_answer_and_its_sources_and_nothing_else(home_with_kb: Path):
    result = run_cli(home_with_kb / "home", "ask", "Attu 是什么工具？", "--kb", "docs",
                     TMPDIR=str(home_with_kb / "tmp"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Attu 是一个多合一的 Milvus GUI 管理工具。"
    assert result.stderr.splitlines()[0].startswith("[1] 部署.md > 部署")
    assert not any(noise in result.stderr for noise in THIRD_PARTY_NOISE), result.stderr


def test_milvus_lite_logs_go_under_the_data_directory_not_tmp(home_with_kb: Path):
    assert not [name for name in (home_with_kb / "tmp").iterdir() if "milvus" in name.name.lower()
                and not name.name.endswith(".sock")]
    assert any((home_with_kb / "home" / "logs").iterdir())


def test_kb_list_opens_neither_the_model_nor_milvus(tmp_path: Path):
    result = run_cli(tmp_path / "home", "kb", "list")
    assert result.returncode == 0, result.stderr
    assert "name" in result.stdout and not (tmp_path / "home" / "milvus.db").exists()
    assert not (tmp_path / "home" / "embeddings.sqlite").exists()


@pytest.mark.parametrize("yaml_text, expected", [
    ("llm: [unclosed", "invalid YAML"),
    ("llm:\n  model_engine: gpt\n", "llm.model_engine: unknown LLM engine 'gpt'; known: none, nvidia, openai, teco"),
    ("text_splitter:\n  chunk_size: 100\n  chunk_overlap: 100\n", "chunk_overlap (100) must be smaller"),
    ("prompts:\n  rag_template: '只有 {query}'\n", "must contain {context}"),
    ("retrieval:\n  score_threshold: .nan\n", "retrieval.score_threshold"),
])
def test_bad_settings_are_one_clean_line_and_exit_1(tmp_path: Path, yaml_text: str, expected: str):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    for command in (["kb", "list"], ["serve", "--port", "1"], ["bench", "cmrc", str(config)], ["warmup"]):
        result = run_cli(tmp_path / "home", "--config", str(config), *command)
        assert result.returncode == 1, (command, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (command, result.stderr)


def test_domain_errors_are_clean_for_every_kind_of_command(tmp_path: Path):
    missing = run_cli(tmp_path / "home", "ask", "问题", "--kb", "没有这个库")
    assert missing.returncode == 1 and "knowledge base not found: 没有这个库" in missing.stderr
    bad_name = run_cli(tmp_path / "home", "kb", "create", "../etc")
    assert bad_name.returncode == 1 and "must not contain" in bad_name.stderr
    no_llm = run_cli(tmp_path / "home", "warmup")
    assert no_llm.returncode == 1 and "no LLM configured" in no_llm.stderr
    for result in (missing, bad_name, no_llm):
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_verbose_flag_is_a_global_option_that_changes_no_output(tmp_path: Path):
    quiet_run = run_cli(tmp_path / "home", "kb", "list")
    verbose_run = run_cli(tmp_path / "home", "-v", "kb", "list")
    assert verbose_run.returncode == 0, verbose_run.stderr
    assert verbose_run.stdout == quiet_run.stdout and "name" in verbose_run.stdout
