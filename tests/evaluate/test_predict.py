"""Batch answers (predict.json): input validation, order, contexts, the journal and resume; gold formats; CMRC.

The RAG facade is stood in for by `DictAnswerer`, a deterministic answerer over a dict with the same
`ask(kb, question) -> Answer` method; the end-to-end run on a real knowledge base lives with the RAG tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import CMRC_DEV
import typer
from typer.testing import CliRunner

from tecorag.cli import CleanErrors
from tecorag.errors import InputError, LLMError
from tecorag.evaluate.commands import add_evaluation_commands
from tecorag.evaluate.predict import (
    Question,
    cmrc_document_name,
    cmrc_to_questions_and_gold,
    journal_path,
    predict,
    read_gold,
    read_predictions,
    read_questions,
)
from tecorag.types import Answer, Chunk, Citation, Hit



class DictAnswerer:
    """Stand-in for the RAG facade: answers from a dict, remembers every question asked (thread-safe),
    optionally sleeps per question or fails on one question with a real LLMError."""

    def __init__(self, answers: dict[str, str], delays: dict[str, float] | None = None, fail_on: str | None = None):
        self.answers = answers
        self.delays = delays or {}
        self.fail_on = fail_on
        self.asked: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def ask(self, kb: str, question: str) -> Answer:
        with self._lock:
            self.asked.append((kb, question))
        time.sleep(self.delays.get(question, 0.0))
        if question == self.fail_on:
            raise LLMError("stand-in engine at 127.0.0.1:1: unreachable")
        text = self.answers[question]
        chunk = Chunk(id=f"c-{question}", file=f"{kb}-doc.txt", text=f"上下文：{text}", index_text=text,
                      position=0, page=3)
        other = Chunk(id="c-other", file="other.txt", text="无关的段落", index_text="无关", position=1)
        return Answer(question=question, text=text, hits=[Hit(chunk, 0.9), Hit(other, 0.1)],
                      citations=[Citation(file=chunk.file, page=3, heading="", text=chunk.text, score=0.9)])


def _questions(count: int) -> list[Question]:
    # mixed id types, as hand-written question files have
    return [Question(id=n if n % 2 else f"q{n}", question=f"第{n}个问题是什么？") for n in range(1, count + 1)]


def _answerer(questions, **kwargs) -> DictAnswerer:
    return DictAnswerer({q.question: f"答案{q.id}" for q in questions}, **kwargs)


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _journal_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------- reading question files


def test_read_questions_accepts_ids_of_both_kinds_and_a_bom(tmp_path):
    path = tmp_path / "q.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"id": 1, "question": "问一"}, {"id": "b", "question": "问二"}],
                                                  ensure_ascii=False).encode("utf-8"))
    assert read_questions(path) == [Question(1, "问一"), Question("b", "问二")]


@pytest.mark.parametrize("data, expected", [
    ({"id": 1, "question": "q"}, "must be a JSON list of objects, got dict"),
    ([{"id": 1, "question": "q"}, "问题"], "item 1 must be an object, got str"),
    ([{"id": 1, "question": "q"}, {"question": "q2"}], "item 1 has no 'id'"),
    ([{"id": 1, "question": "q"}, {"id": 7, "question": ""}], "item 1 (id 7): 'question' must be a non-empty string"),
    ([{"id": 1, "question": "q"}, {"id": 7, "text": "q"}], "item 1 (id 7): 'question' must be a non-empty string"),
    ([{"id": 1, "question": "q"}, {"id": True, "question": "q"}], "item 1 (id True): 'id' must be an integer"),
    ([{"id": 1, "question": "a"}, {"id": "1", "question": "b"}], "item 1 (id '1'): id repeats item 0"),
])
def test_read_questions_names_the_offending_item(tmp_path, data, expected):
    with pytest.raises(InputError) as error:
        read_questions(_write(tmp_path / "q.json", data))
    assert expected in str(error.value)
    assert "q.json" in str(error.value)


def test_read_questions_reports_invalid_json_and_encoding(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1, "question": "q"},\n {"id": 2 "question": "r"}]', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON.*line 2"):
        read_questions(broken)
    gbk = tmp_path / "gbk.json"
    gbk.write_bytes('[{"id": 1, "question": "中文问题"}]'.encode("gbk"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_questions(gbk)
    with pytest.raises(InputError, match="not found"):
        read_questions(tmp_path / "missing.json")


# ---------------------------------------------------------------- predict


def test_predict_keeps_input_order_and_ids_under_concurrency(tmp_path):
    questions = _questions(8)
    # later questions answer sooner, so completion order is the reverse of the input order
    answerer = _answerer(questions, delays={q.question: 0.02 * (8 - n) for n, q in enumerate(questions)})
    out = tmp_path / "out" / "predict.json"
    records = predict(answerer, "kb1", questions, out, concurrency=4, progress=False)

    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == records
    assert [item["id"] for item in written] == [q.id for q in questions]           # 1, "q2", 3, "q4"...
    assert [item["answer"] for item in written] == [f"答案{q.id}" for q in questions]
    assert set(written[0]) == {"id", "question", "answer"}
    raw = out.read_text(encoding="utf-8")
    assert "第1个问题是什么？" in raw and "\\u" not in raw                            # ensure_ascii=False
    assert raw.startswith('[\n  {\n    "id": 1,')                                   # indent 2
    assert sorted(q for _, q in answerer.asked) == sorted(q.question for q in questions)
    assert {kb for kb, _ in answerer.asked} == {"kb1"}
    assert not journal_path(out).exists()
    assert [p.name for p in out.parent.iterdir()] == ["predict.json"]                # no temp file left


def test_predict_with_contexts_writes_the_ranked_hits(tmp_path):
    questions = _questions(2)
    predict(_answerer(questions), "kb", questions, tmp_path / "p.json", with_contexts=True, progress=False)
    first = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))[0]
    assert first["contexts"] == [
        {"file": "kb-doc.txt", "page": 3, "text": "上下文：答案1", "score": 0.9},
        {"file": "other.txt", "page": None, "text": "无关的段落", "score": 0.1},
    ]
    # and the file reads back as predictions with contexts, ready for retrieval metrics
    assert read_predictions(tmp_path / "p.json")[0].contexts[0].file == "kb-doc.txt"


def test_resume_after_a_failure_asks_only_the_unanswered(tmp_path):
    questions = _questions(10)
    out = tmp_path / "predict.json"
    failing = _answerer(questions, fail_on=questions[4].question)
    with pytest.raises(LLMError):
        predict(failing, "kb", questions, out, progress=False)
    assert not out.exists()
    journal = _journal_lines(journal_path(out))
    assert journal[0]["kb"] == "kb"
    assert [record["id"] for record in journal[1:]] == [q.id for q in questions[:4]]

    # interrupted a second time: the journal grows, still with one header
    second = _answerer(questions, fail_on=questions[7].question)
    with pytest.raises(LLMError):
        predict(second, "kb", questions, out, resume=True, progress=False)
    assert [q for _, q in second.asked] == [q.question for q in questions[4:8]]
    journal = _journal_lines(journal_path(out))
    assert sum(1 for record in journal if "format" in record) == 1
    assert [record["id"] for record in journal[1:]] == [q.id for q in questions[:7]]

    resumed = _answerer(questions)
    predict(resumed, "kb", questions, out, resume=True, progress=False)
    assert [q for _, q in resumed.asked] == [q.question for q in questions[7:]]
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [item["id"] for item in written] == [q.id for q in questions]
    assert not journal_path(out).exists()


def test_resume_cuts_a_torn_last_journal_line(tmp_path):
    questions = _questions(6)
    out = tmp_path / "predict.json"
    with pytest.raises(LLMError):
        predict(_answerer(questions, fail_on=questions[3].question), "kb", questions, out, progress=False)
    with open(journal_path(out), "ab") as journal:                  # the process died mid-write
        journal.write('{"id": "q4", "question": "第4个问'.encode("utf-8"))
    resumed = _answerer(questions)
    predict(resumed, "kb", questions, out, resume=True, progress=False)
    assert [q for _, q in resumed.asked] == [q.question for q in questions[3:]]
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 6


def test_resume_refuses_a_journal_from_another_run(tmp_path):
    questions = _questions(4)
    out = tmp_path / "predict.json"
    with pytest.raises(LLMError):
        predict(_answerer(questions, fail_on=questions[2].question), "kb", questions, out, progress=False)
    with pytest.raises(InputError, match="different run"):
        predict(_answerer(questions), "other-kb", questions, out, resume=True, progress=False)
    with pytest.raises(InputError, match="different run"):
        predict(_answerer(questions), "kb", questions, out, resume=True, with_contexts=True, progress=False)
    edited = [Question(q.id, q.question + "（改）") for q in questions]
    with pytest.raises(InputError, match="not in the question file"):
        predict(_answerer(edited), "kb", edited, out, resume=True, progress=False)


def test_without_resume_an_old_journal_is_discarded(tmp_path):
    questions = _questions(4)
    out = tmp_path / "predict.json"
    with pytest.raises(LLMError):
        predict(_answerer(questions, fail_on=questions[2].question), "kb", questions, out, progress=False)
    fresh = _answerer(questions)
    predict(fresh, "kb", questions, out, progress=False)
    assert len(fresh.asked) == 4


def test_predict_rejects_bad_arguments(tmp_path):
    questions = _questions(2)
    with pytest.raises(InputError, match="concurrency"):
        predict(_answerer(questions), "kb", questions, tmp_path / "p.json", concurrency=0, progress=False)
    with pytest.raises(InputError, match="unique"):
        predict(_answerer(questions), "kb", [Question(1, "a"), Question("1", "b")], tmp_path / "p.json",
                progress=False)


# ---------------------------------------------------------------- a real process killed mid-run


STAND_IN_SCRIPT = textwrap.dedent("""
    import os, time, typer
    from tecorag.evaluate.commands import add_evaluation_commands
    from tecorag.types import Answer

    class SleepyDictAnswerer:
        '''Stand-in for the RAG facade: logs each question asked, sleeps, answers from the question.'''

        def ask(self, kb, question):
            with open(os.environ["ASKED_LOG"], "a", encoding="utf-8") as log:
                log.write(question + "\\n")
                log.flush()
                os.fsync(log.fileno())
            time.sleep(float(os.environ["ANSWER_DELAY_S"]))
            return Answer(question=question, text="答：" + question)

    app = typer.Typer()
    add_evaluation_commands(app, lambda ctx: SleepyDictAnswerer())
    app()
""")


def test_killed_process_resumes_without_asking_answered_questions_again(tmp_path):
    count = 12
    questions_path = _write(tmp_path / "questions.json",
                            [{"id": n, "question": f"问题{n}"} for n in range(1, count + 1)])
    script = tmp_path / "run_predict.py"
    script.write_text(STAND_IN_SCRIPT, encoding="utf-8")
    asked_log = tmp_path / "asked.log"
    out = tmp_path / "predict.json"
    env = {**os.environ, "ASKED_LOG": str(asked_log), "ANSWER_DELAY_S": "0.25"}
    command = [sys.executable, str(script), "predict", str(questions_path), "--kb", "kb", "-o", str(out),
               "--concurrency", "2", "--no-progress"]

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    journal = journal_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and len(_journal_lines(journal)) - 1 >= 4:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()
    assert not out.exists()

    answered_before = {record["question"] for record in _journal_lines(journal)[1:]}
    assert 4 <= len(answered_before) < count
    asked_before = asked_log.read_text(encoding="utf-8").splitlines()

    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    asked_after = asked_log.read_text(encoding="utf-8").splitlines()[len(asked_before):]
    assert not answered_before & set(asked_after)                       # nothing answered is asked again
    assert len(asked_after) == count - len(answered_before)             # each remaining question once
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [item["id"] for item in written] == list(range(1, count + 1))
    assert all(item["answer"] == "答：" + item["question"] for item in written)
    assert not journal.exists()


# ---------------------------------------------------------------- the predict command


def test_predict_command_writes_the_file_and_rejects_bad_input(tmp_path):
    questions = [{"id": 1, "question": "问一"}, {"id": 2, "question": "问二"}]
    answerer = DictAnswerer({"问一": "答一", "问二": "答二"})
    app = typer.Typer(cls=CleanErrors)  # the tecorag app's error wrapper
    add_evaluation_commands(app, lambda ctx: answerer)
    runner = CliRunner()
    good = _write(tmp_path / "q.json", questions)
    result = runner.invoke(app, ["predict", str(good), "--kb", "docs", "-o", str(tmp_path / "p.json"),
                                 "--with-contexts", "--no-progress"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert [item["answer"] for item in written] == ["答一", "答二"] and "contexts" in written[0]

    bad = _write(tmp_path / "bad.json", questions + [{"id": 3}])
    result = runner.invoke(app, ["predict", str(bad), "--kb", "docs", "-o", str(tmp_path / "p2.json")])
    assert result.exit_code == 1
    assert "item 2 (id 3): 'question' must be a non-empty string" in result.output
    assert not (tmp_path / "p2.json").exists()


# ---------------------------------------------------------------- gold files and CMRC


def test_read_gold_accepts_answer_or_answers_and_sources(tmp_path):
    path = _write(tmp_path / "gold.json", [
        {"id": 1, "question": "q1", "answer": "北京"},
        {"id": 2, "answers": ["上海", "沪"], "sources": ["a.txt"], "passages": "上海是……"},
    ])
    first, second = read_gold(path)
    assert first.answers == ("北京",) and first.sources == ()
    assert second.answers == ("上海", "沪") and second.sources == ("a.txt",) and second.passages == ("上海是……",)
    with pytest.raises(InputError, match=r"item 0 \(id 1\): needs 'answer' or 'answers'"):
        read_gold(_write(tmp_path / "bad.json", [{"id": 1, "answers": []}]))
    with pytest.raises(InputError, match="no questions"):
        read_gold(_write(tmp_path / "empty.json", []))
    with pytest.raises(InputError, match=r"item 0 \(id 1\): 'sources' must be"):
        read_gold(_write(tmp_path / "bad2.json", [{"id": 1, "answer": "x", "sources": [1]}]))


def test_cmrc_document_name_uses_the_paragraph_id_or_falls_back():
    article = {"id": "DEV_0", "paragraphs": [{"id": "DEV_0", "context": "…"}, {"context": "…"}]}
    assert cmrc_document_name(article, 0) == "DEV_0.md"
    assert cmrc_document_name(article, 1) == "DEV_0-1.md"


def test_cmrc_dev_set_converts_to_questions_and_gold(tmp_path):
    data = json.loads(CMRC_DEV.read_text(encoding="utf-8"))
    questions, gold = cmrc_to_questions_and_gold(data)
    assert len(questions) == len(gold) == 3219                    # the split's question count (README)
    assert questions[0] == Question("DEV_0_QUERY_0", "《战国无双3》是由哪两个公司合作开发的？")
    assert gold[0].answers == ("光荣和ω-force",)                   # three identical gold spans collapse to one
    assert gold[0].sources == ("DEV_0.md",)
    assert len({item.sources[0] for item in gold}) == 848          # one document per paragraph
    # read_gold takes the SQuAD-style file directly
    assert read_gold(CMRC_DEV)[5] == gold[5]
