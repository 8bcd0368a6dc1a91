"""Load benchmark: concurrent users asking questions of real `tecorag serve` replicas over loopback.

The knowledge base is CMRC 2018 dev paragraphs (`--paragraphs`), ingested once through the real pipeline into
Milvus Lite's gRPC server and a PostgreSQL catalog (a shared SQLite file when PostgreSQL is not installed): the
stores several replicas share. Each engine is served by one replica, then by two (`--replicas`), each
`python -m tecorag.cli serve` in a subprocess on 127.0.0.1 with its own data directory; user i talks to replica
i mod n, as behind a load balancer. For each user count, that many users (threads, one HTTP client each) ask back
to back for `--seconds` through `POST /chat/knowledge_base_chat` (Teco-RAG's SSE endpoint), twice:

- `distinct`: every request asks the next question of a pool of CMRC questions about the knowledge base, never
  one of the last few hundred asked, so each question is embedded (the recent-question memo cannot help);
- `repeated`: the users cycle through `--repeated` questions (10), as a demo would, so after the first round every
  question vector comes from the memo.

Engines: `extractive` (no LLM) and `llm` (the OpenAI-compatible stand-in of tests/standins spacing its answer
pieces by `--token-delay-ms`, so the LLM, not the store, sets the pace). Throughput, latency percentiles and errors
per run; the two-replica to one-replica requests/s ratio per engine, user count and question kind.

    python benchmarks/load.py                                  # 200 paragraphs; users 1,8; 10 s; replicas 1,2
    python benchmarks/load.py --engines llm --users 16 --replicas 1,2 --seconds 20

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
CMRC_DEV = REPO.parent / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.json"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from postgres_fixtures import postgres_bin, postgres_cluster  # noqa: E402  (tests/ and benchmarks/ are no packages)
from scale import copy_sqlite  # noqa: E402
from server_fixtures import ServeProcess, clean_environment, lite_milvus_server  # noqa: E402
from standins.openai_standin import OpenAIStandin  # noqa: E402

from tecorag.config import load_settings  # noqa: E402
from tecorag.evaluate.cmrc import _percentile, load_cmrc  # noqa: E402
from tecorag.rag import RAG  # noqa: E402

KB_NAME = "cmrc-load"
QUESTION_KINDS = ("distinct", "repeated")
REQUEST_TIMEOUT_S = 120


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,8", help="concurrent user counts, comma separated (at most 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each run asks (at most 300)")
    parser.add_argument("--replicas", default="1,2", help="replica counts, comma separated (1 and/or 2)")
    parser.add_argument("--engines", default="extractive,llm",
                        help="extractive (no LLM) and/or llm (the OpenAI-compatible stand-in)")
    parser.add_argument("--data", type=Path, default=CMRC_DEV, help="CMRC 2018 (SQuAD-style) JSON")
    parser.add_argument("--paragraphs", type=int, default=200, help="CMRC paragraphs in the knowledge base")
    parser.add_argument("--repeated", type=int, default=10, help="questions the `repeated` runs cycle through")
    parser.add_argument("--seed", type=int, default=7, help="shuffles the question pool")
    parser.add_argument("--token-delay-ms", type=float, default=50.0, help="the stand-in's delay per answer piece")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the server processes (repeatable)")
    parser.add_argument("--catalog", choices=("auto", "postgres", "sqlite"), default="auto",
                        help="the shared catalog: a throwaway PostgreSQL (auto: when installed) or a SQLite file")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench/embeddings.sqlite"),
                        help="persistent embedding cache, so the paragraphs are embedded once across runs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"),
                        help="a fresh directory is created (and removed) inside it for each run")
    args = parser.parse_args(argv)
    args.users = sorted({int(count) for count in args.users.split(",") if count.strip()})
    args.replicas = sorted({int(count) for count in args.replicas.split(",") if count.strip()})
    args.engines = [engine for engine in args.engines.split(",") if engine]
    if not args.users or args.users[0] < 1 or args.users[-1] > 64:
        parser.error("--users must be between 1 and 64")
    if not args.replicas or not set(args.replicas) <= {1, 2}:
        parser.error("--replicas takes 1 and/or 2")
    if not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]")
    if args.paragraphs < 1 or args.repeated < 1:
        parser.error("--paragraphs and --repeated must be positive")
    if not args.engines or set(args.engines) - {"extractive", "llm"}:
        parser.error("--engines takes extractive and/or llm")
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes NAME=VALUE")
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    return args


# -- the shared stores ----------------------------------------------------------------------------------------


@contextmanager
def shared_catalog(choice: str, directory: Path) -> Iterator[tuple[str, str]]:
    """(kind, SQLAlchemy URL) of the catalog the replicas share."""
    bin_dir = postgres_bin()
    if choice == "postgres" and bin_dir is None:
        raise SystemExit("--catalog postgres: PostgreSQL is not installed (no initdb)")
    if choice == "sqlite" or bin_dir is None:
        yield "sqlite", f"sqlite:///{directory / 'catalog.db'}"     # one host: SQLite's locks span processes
        return
    with postgres_cluster(bin_dir) as cluster:
        yield "postgresql", cluster.create_database()


def ingest_paragraphs(home: Path, milvus_uri: str, catalog_url: str, args: argparse.Namespace) -> dict:
    """The CMRC paragraphs into the shared stores through the real pipeline, the embedding cache copied in and
    back so that later runs embed nothing."""
    documents, _ = load_cmrc(args.data, args.paragraphs)
    settings = load_settings(None, environ={}, home=home, vector_store={"uri": milvus_uri},
                             catalog={"url": catalog_url})
    settings.home.mkdir(parents=True, exist_ok=True)
    if args.cache.exists():
        copy_sqlite(args.cache, home / "embeddings.sqlite")
    started = time.perf_counter()
    with RAG(settings) as rag:
        rag.create_kb(KB_NAME)
        report = rag.ingest(KB_NAME, documents)
        if report.failed:
            raise SystemExit(f"ingestion failed for {len(report.failed)} paragraphs: {report.failed}")
    copy_sqlite(home / "embeddings.sqlite", args.cache)
    return {"paragraphs": len(documents), "chunks": report.chunks, "embedded": report.embedded,
            "ingest_seconds": round(time.perf_counter() - started, 1)}


def question_pool(args: argparse.Namespace) -> list[str]:
    """Every distinct CMRC question about the ingested paragraphs, in a seeded random order."""
    _, questions = load_cmrc(args.data, args.paragraphs)
    pool = list(dict.fromkeys(question.question for question in questions))
    random.Random(args.seed).shuffle(pool)
    return pool


class DistinctQuestions:
    """Hands out the pool's questions one by one across all runs and threads; wraps around only when the pool
    is used up (recorded), by when a question's last ask is far outside any replica's 64-question memo."""

    def __init__(self, pool: Sequence[str]):
        self._pool = list(pool)
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.asked = 0

    def __call__(self) -> str:
        with self._lock:
            self.asked += 1
            return self._pool[next(self._next) % len(self._pool)]

    @property
    def wrapped(self) -> bool:
        return self.asked > len(self._pool)


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


def run_users(base_urls: Sequence[str], next_question: Callable[[int, int], str], users: int,
              seconds: float) -> dict:
    """`users` threads (user i on replica i mod n) ask back to back until `seconds` have passed; requests in
    flight then are finished. `next_question(user, asked)` gives each user's next question."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def user(number: int) -> None:
        with httpx.Client(base_url=base_urls[number % len(base_urls)], timeout=REQUEST_TIMEOUT_S) as client:
            asked = 0
            while time.perf_counter() < deadline:
                outcome = ask(client, next_question(number, asked))
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


@contextmanager
def replicas_serving(count: int, directory: Path, environment: dict[str, str]) -> Iterator[list[str]]:
    """`count` replicas started together, each with its own data directory; yields their base URLs."""
    servers = []
    for number in range(count):
        home = directory / f"replica-{number}"
        home.mkdir(parents=True, exist_ok=True)
        servers.append(ServeProcess(home, {**environment, "TECORAG_HOME": str(home)}, f"replica-{number}"))
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            urls = list(pool.map(lambda server: server.start(), servers))
        yield urls
    finally:
        for server in servers:
            server.stop()


def run_engine(engine: str, directory: Path, stores: dict[str, str], pool: list[str], distinct: DistinctQuestions,
               args: argparse.Namespace, console: Console) -> dict:
    """Serve the knowledge base with one engine by 1, then 2 replicas and run every user count and question
    kind against them."""
    repeated = pool[:args.repeated]
    warmup_questions = pool[args.repeated:args.repeated + 4]
    standin = OpenAIStandin(token_delay_s=args.token_delay_ms / 1000) if engine == "llm" else nullcontext()
    runs = []
    with standin:
        extra = {**args.server_env, "APP_VECTOR_STORE_URI": stores["milvus"], "APP_CATALOG_URL": stores["catalog"]}
        if engine == "llm":
            extra.update({"APP_LLM_MODEL_ENGINE": "nvidia", "APP_LLM_IP": "127.0.0.1",
                          "APP_LLM_PORT": str(standin.port), "APP_LLM_MODEL_NAME": standin.model_name})
        environment = clean_environment(directory, extra)
        for replicas in args.replicas:
            with replicas_serving(replicas, directory / f"{engine}-{replicas}", environment) as urls:
                for url in urls:        # warm-up, not measured: jieba, Milvus segments, first connections
                    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
                        failures = [outcome.error for outcome in map(lambda q: ask(client, q), warmup_questions)
                                    if outcome.error]
                    if failures:
                        raise SystemExit(f"{engine}: warm-up requests failed: {failures}")
                for users in args.users:
                    for kind in QUESTION_KINDS:
                        console.print(f"[bold]{engine}[/bold]: {replicas} replica(s), {users} users, {kind} "
                                      f"questions, {args.seconds:g}s", highlight=False)
                        next_question = ((lambda user, asked: distinct()) if kind == "distinct" else
                                         (lambda user, asked: repeated[(user + asked * users) % len(repeated)]))
                        row = {"replicas": replicas, "questions": kind,
                               **run_users(urls, next_question, users, args.seconds)}
                        console.print(f"  {row['requests_per_s']} req/s, p50 {row['latency_ms']['p50']} ms, "
                                      f"{row['errors']} errors", highlight=False)
                        runs.append(row)
        result: dict = {"engine": engine, "runs": runs, "replica_ratio": replica_ratios(runs)}
        if engine == "llm":
            result["token_delay_ms"] = args.token_delay_ms
            result["standin_requests"] = len(standin.requests)
            result["standin_max_concurrent_streams"] = standin.max_active_streams
            result["concurrency"] = concurrency_verdict(
                [run for run in runs if run["replicas"] == args.replicas[0] and run["questions"] == "distinct"])
    return result


def replica_ratios(runs: list[dict]) -> list[dict]:
    """Two replicas' requests/s over one replica's, for each user count and question kind measured with both."""
    by_key = {(run["replicas"], run["users"], run["questions"]): run["requests_per_s"] for run in runs}
    ratios = []
    for (replicas, users, kind), one in by_key.items():
        two = by_key.get((2, users, kind))
        if replicas == 1 and two is not None:
            ratios.append({"users": users, "questions": kind, "one_replica": one, "two_replicas": two,
                           "ratio": round(two / one, 2) if one else None})
    return ratios


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
    pool = question_pool(args)
    if len(pool) < args.repeated + 4 + 64:
        raise SystemExit(f"only {len(pool)} questions about {args.paragraphs} paragraphs: use more --paragraphs")
    distinct = DistinctQuestions(pool[args.repeated + 4:])      # neither the repeated nor the warm-up ones
    with tempfile.TemporaryDirectory(prefix="load-", dir=args.workdir) as name, ExitStack() as stack:
        directory = Path(name)
        milvus_uri = stack.enter_context(lite_milvus_server(directory))
        catalog_kind, catalog_url = stack.enter_context(shared_catalog(args.catalog, directory))
        console.print(f"ingesting {args.paragraphs} CMRC paragraphs", highlight=False)
        knowledge_base = ingest_paragraphs(directory / "ingest", milvus_uri, catalog_url, args)
        stores = {"milvus": milvus_uri, "catalog": catalog_url}
        engines = [run_engine(engine, directory, stores, pool, distinct, args, console) for engine in args.engines]
    return {
        "benchmark": "load",
        "endpoint": "POST /chat/knowledge_base_chat (SSE)",
        "stores": {"vector_store": "Milvus Lite gRPC server (shared)", "catalog": catalog_kind},
        "knowledge_base": knowledge_base,
        "questions": {"pool": len(pool), "distinct_asked": distinct.asked, "distinct_pool_wrapped": distinct.wrapped,
                      "repeated": args.repeated},
        "seconds_per_run": args.seconds,
        "server_env": args.server_env,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
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
