"""API keys scoped to knowledge bases, over real uvicorn: a scoped key sees and touches nothing outside its
knowledge bases through any route, a read-only key changes nothing, revoked keys stop working, global keys keep
full access, and `/health` and `/ready` tell a caller without a key nothing it should not know."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

import figures
from conftest import make_settings, run_cli
from server_fixtures import running_server, sse_data, wait_for_job
from tecorag.server.app import create_app

GLOBAL_KEY = "global-test-key-0123456789"
TRAVEL = "# 差旅\n\n员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。\n"
SALARY = "# 薪酬\n\n工资每月十日发放，绩效奖金每季度末发放。\n"


@dataclass
class Keyed:
    url: str
    app: object
    home: object
    read_only_key: str
    read_write_key: str
    secret_job: str

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def upload(client: httpx.Client, kb: str, name: str, text: str) -> httpx.Response:
    return client.post("/knowledge_base/upload_docs", data={"knowledge_base_name": kb},
                       files=[("files", (name, text.encode("utf-8"), "text/markdown"))])


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[Keyed]:
    home = tmp_path_factory.mktemp("keys") / "home"
    app = create_app(make_settings(home, server={"api_keys": [GLOBAL_KEY]}))
    with running_server(app) as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": GLOBAL_KEY}, timeout=120) as admin:
            for kb, name, text in [("travel", "travel.md", TRAVEL), ("salary", "salary.md", SALARY)]:
                assert admin.post("/knowledge_base/create_knowledge_base",
                                  json={"knowledge_base_name": kb}).status_code == 200
                assert upload(admin, kb, name, text).json()["data"]["indexed_files"] == [name]
            job = admin.post("/knowledge_bases/salary/files", files=[("files", ("bonus.md", SALARY.encode(), "x"))])
            secret_job = job.json()["data"]["id"]
            wait_for_job(admin, secret_job)
        catalog = app.state.tecorag.rag.catalog
        _, read_only = catalog.create_api_key(["Travel"], can_write=False, label="reader")
        _, read_write = catalog.create_api_key(["travel"], can_write=True, label="editor")
        yield Keyed(url=url, app=app, home=home, read_only_key=read_only, read_write_key=read_write,
                    secret_job=secret_job)


def probes_of_the_other_kb(key_client: httpx.Client, job_id: str) -> list[tuple[str, httpx.Response]]:
    """Every route, aimed at knowledge base `salary`, which the key may not use."""
    json_routes = {
        "details": ("/knowledge_base/get_kb_details", {"knowledge_base_name": "salary"}),
        "delete kb": ("/knowledge_base/delete_knowledge_base", {"knowledge_base_name": "salary"}),
        "clear kb": ("/knowledge_base/clear_knowledge_base", {"knowledge_base_name": "salary"}),
        "create kb": ("/knowledge_base/create_knowledge_base", {"knowledge_base_name": "new_kb"}),
        "hit test": ("/rag/hit_test", {"query": "工资", "knowledge_base_name": "salary"}),
        "search": ("/knowledge_bases/salary/search", {"query": "工资"}),
        "chat": ("/chat/knowledge_base_chat", {"query": "工资哪天发", "knowledge_base_name": "salary",
                                               "stream": False}),
        "chat stream": ("/chat/knowledge_base_chat", {"query": "工资哪天发", "knowledge_base_name": "SALARY"}),
        "openai": ("/v1/chat/completions", {"model": "salary", "messages": [{"role": "user", "content": "工资"}]}),
        "openai stream": ("/v1/chat/completions", {"model": "salary", "stream": True,
                                                   "messages": [{"role": "user", "content": "工资"}]}),
    }
    probes = [(what, key_client.post(path, json=body)) for what, (path, body) in json_routes.items()]
    probes += [
        ("files", key_client.get("/knowledge_bases/salary/files")),
        ("file", key_client.get("/knowledge_bases/salary/files/salary.md")),
        ("delete file", key_client.delete("/knowledge_bases/salary/files/salary.md")),
        ("job", key_client.get(f"/jobs/{job_id}")),
        ("upload", upload(key_client, "salary", "evil.md", TRAVEL)),
        ("async upload", key_client.post("/knowledge_bases/salary/files",
                                         files=[("files", ("evil.md", b"x", "text/plain"))])),
        ("delete kb as text", key_client.post("/knowledge_base/delete_knowledge_base", content="salary",
                                              headers={"Content-Type": "text/plain"})),
        ("chunks", key_client.get("/knowledge_bases/salary/files/salary.md/chunks")),
        ("retry", key_client.post("/knowledge_bases/salary/files/salary.md/retry")),
        ("pdf page", key_client.get("/knowledge_bases/salary/files/salary.md/pages/1")),
        ("feedback", key_client.get("/knowledge_bases/salary/feedback")),
        ("feedback export", key_client.get("/knowledge_bases/salary/feedback/qa")),
        ("add feedback", key_client.post("/knowledge_bases/salary/feedback",
                                         json={"question": "工资", "answer": "十日", "rating": 1})),
    ]
    return probes


@pytest.mark.parametrize("which", ["read_only_key", "read_write_key"])
def test_a_scoped_key_sees_and_touches_nothing_outside_its_knowledge_bases(keyed, which):
    with keyed.client(getattr(keyed, which)) as client:
        for what, reply in probes_of_the_other_kb(client, keyed.secret_job):
            figures.count("scoped-key probes")
            assert reply.status_code == 404, (what, reply.status_code, reply.text)
            assert "salary" not in reply.text.replace("knowledge base not found: salary", "").replace(
                "knowledge base not found: SALARY", "").replace("file not in knowledge base salary", ""), what
            assert "工资" not in reply.text and "bonus" not in reply.text, what
            figures.count("scoped-key probes refused")
        assert client.post("/knowledge_base/list_knowledge_bases").json()["data"] == ["travel"]
        assert [kb["kb_name"] for kb in client.post("/knowledge_base/get_kb_details").json()["data"]] == ["travel"]
        assert [model["id"] for model in client.get("/v1/models").json()["data"]] == ["travel"]
        hits = client.post("/rag/hit_test", json={"query": "住宿标准", "knowledge_base_name": "travel"})
        assert hits.status_code == 200 and "五百元" in hits.json()["data"][0]["context"]
        answer = client.post("/chat/knowledge_base_chat", json={"query": "住宿标准", "knowledge_base_name": "travel"})
        assert answer.status_code == 200 and sse_data(answer.text)[-1]["result"]
    with keyed.client(GLOBAL_KEY) as admin:          # the other knowledge base is untouched
        files = admin.get("/knowledge_bases/salary/files").json()["data"]
        assert [record["name"] for record in files] == ["bonus.md", "salary.md"]
        assert "new_kb" not in admin.post("/knowledge_base/list_knowledge_bases").json()["data"]


def test_a_read_only_key_changes_nothing_and_a_read_write_key_only_its_own(keyed):
    with keyed.client(keyed.read_only_key) as reader:
        writes = [upload(reader, "travel", "more.md", TRAVEL),
                  reader.post("/knowledge_bases/travel/files", files=[("files", ("more.md", b"x", "text/plain"))]),
                  reader.delete("/knowledge_bases/travel/files/travel.md"),
                  reader.post("/knowledge_base/clear_knowledge_base", json={"knowledge_base_name": "travel"}),
                  reader.post("/knowledge_base/delete_knowledge_base", json={"knowledge_base_name": "travel"})]
        for reply in writes:
            figures.count("scoped-key probes")
            assert reply.status_code == 403 and "read-only" in reply.json()["msg"], reply.text
            figures.count("scoped-key probes refused")
        assert [f["name"] for f in reader.get("/knowledge_bases/travel/files").json()["data"]] == ["travel.md"]
    with keyed.client(keyed.read_write_key) as editor:
        added = upload(editor, "travel", "hotel.md", "# 酒店\n\n协议酒店可享受八折优惠。\n")
        assert added.status_code == 200 and added.json()["data"]["indexed_files"] == ["hotel.md"]
        accepted = editor.post("/knowledge_bases/travel/files", files=[("files", ("taxi.md", "打车实报实销。".encode(),
                                                                                  "text/plain"))])
        assert wait_for_job(editor, accepted.json()["data"]["id"])["status"] == "done"
        assert editor.delete("/knowledge_bases/travel/files/hotel.md").status_code == 200


def test_revoked_and_unknown_keys_are_refused_and_global_keys_keep_full_access(keyed):
    catalog = keyed.app.state.tecorag.rag.catalog
    key, plain = catalog.create_api_key(["travel"], can_write=False)
    with keyed.client(plain) as client:
        assert client.post("/knowledge_base/list_knowledge_bases").status_code == 200
        assert catalog.revoke_api_key(key.id)
        assert client.post("/knowledge_base/list_knowledge_bases").status_code == 401
    for bad in [None, "tk_0000_nope", plain + "x", "\u00e9"]:
        with keyed.client(None) as client:
            headers = {"X-API-Key": bad.encode("utf-8")} if bad else {}
            reply = client.post("/knowledge_base/list_knowledge_bases", headers=headers)
            figures.count("scoped-key probes")
            assert reply.status_code == 401
            figures.count("scoped-key probes refused")
    with keyed.client(GLOBAL_KEY) as admin:
        assert sorted(admin.post("/knowledge_base/list_knowledge_bases").json()["data"]) == ["salary", "travel"]
    stored = {stored.id: stored for stored in catalog.list_api_keys()}
    assert stored[key.id].revoked_at is not None
    raw_tables = "\n".join(str(row) for row in catalog.engine.connect().exec_driver_sql("SELECT * FROM api_keys"))
    assert plain not in raw_tables and keyed.read_only_key not in raw_tables     # stored hashed


def test_health_and_ready_reveal_nothing_without_a_key(keyed):
    with keyed.client(None) as anonymous:
        health = anonymous.get("/health")
        ready = anonymous.get("/ready")
    assert health.status_code == 200 and health.json()["data"] == {"status": "ok", "auth_required": True}
    assert ready.status_code == 200
    checks = ready.json()["data"]["checks"]
    assert set(checks) == {"catalog", "milvus", "llm"} and all(check["detail"] == "" for check in checks.values())
    for text in (health.text, ready.text):
        assert str(keyed.home) not in text and "milvus.db" not in text and "sqlite" not in text
    with keyed.client(keyed.read_only_key) as scoped:
        assert all(check["detail"] == "" for check in scoped.get("/ready").json()["data"]["checks"].values())
    with keyed.client(GLOBAL_KEY) as admin:
        detailed = admin.get("/ready").json()["data"]["checks"]
    assert detailed["milvus"]["detail"] and "milvus.db" not in str(detailed) and str(keyed.home) not in str(detailed)


def test_keys_cli_creates_lists_and_revokes(tmp_path):
    home = tmp_path / "home"
    created = run_cli(home, "keys", "create", "--kb", "hr", "--kb", "ｆｉｎａｎｃｅ", "--read-only", "--label", "auditor")
    assert created.returncode == 0, created.stderr
    plain = created.stdout.strip()
    assert plain.startswith("tk_") and "read-only" in created.stderr and "hr, finance" in created.stderr
    listed = run_cli(home, "keys", "list")
    key_id = plain.split("_")[1]
    assert listed.returncode == 0 and key_id[:8] in listed.stdout and plain not in listed.stdout
    assert run_cli(home, "keys", "revoke", key_id).returncode == 0
    again = run_cli(home, "keys", "revoke", key_id)
    assert again.returncode == 1 and "no active key" in again.stderr
    bad = run_cli(home, "keys", "create", "--kb", "../etc")
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr
