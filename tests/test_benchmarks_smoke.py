"""The scale and load benchmarks run end to end at a tiny size and print the JSON they promise.

Benchmarks are not timed tests: these check behaviour and the output's shape, never speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CMRC_DEV

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *arguments: str, cwd: Path) -> dict:
    """Run a benchmark script; its last stdout line must be one JSON object."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("APP_", "TECORAG_"))}
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], cwd=cwd, env=environment,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_scale_grows_the_collection_and_reports_each_size(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "embeddings.sqlite"
    arguments = ("--data", str(CMRC_DEV), "--paragraphs", "12", "--sizes", "1000,2000,5",
                 "--questions", "10", "--ask-questions", "2", "--cache", str(cache), "--workdir", str(tmp_path))
    first = run_benchmark("scale.py", *arguments, cwd=tmp_path)

    cmrc = first["cmrc"]
    assert cmrc["paragraphs"] == 12 and cmrc["chunks"] >= 12
    assert cmrc["evaluated_paragraphs"] + cmrc["filler_paragraphs"] == 12
    assert cmrc["embedded"] == cmrc["chunks"]                # a fresh cache: every chunk went to the model
    assert [row["chunks"] for row in first["sizes"]] == [cmrc["chunks"], 1000, 2000]
    assert [row["distractors"] for row in first["sizes"]] == [0, 1000 - cmrc["chunks"], 2000 - cmrc["chunks"]]
    assert first["skipped"] == [{"chunks": 5, "reason": f"not above the {cmrc['chunks']} chunks already there"}]
    for row in first["sizes"]:
        assert set(row["retrieval"]) == {"hybrid", "bm25", "dense"}
        for scores in row["retrieval"].values():
            assert 0 <= scores["r1"] <= scores["r5"] <= 1
        for name in ("query_embedding", "hybrid_search", "bm25_search", "dense_search", "ask", "ask_repeated"):
            assert 0 < row["latency_ms"][name]["p50"] <= row["latency_ms"][name]["p95"]
        assert row["memory_mb"]["milvus_lite"] > 0 and row["memory_mb"]["python"] > 0
        assert row["disk_mb"] > 0
        assert 0 <= row["answer_containment"] <= 1
    grown = first["sizes"][1:]
    assert all(row["insert"]["chunks"] > 0 and row["insert"]["chunks_per_s"] > 0 for row in grown)
    assert grown[1]["disk_mb"] > grown[0]["disk_mb"] > first["sizes"][0]["disk_mb"]
    # Random distractor vectors never outscore a real passage, so the dense route keeps its baseline quality.
    baseline_dense = first["sizes"][0]["retrieval"]["dense"]
    assert all(row["retrieval"]["dense"] == baseline_dense for row in grown)
    assert first["target"]["measured"] is None               # no size near 100k was measured

    # A machine that cannot hold a size: it is skipped with the reason and the estimate, and so is every larger one.
    second = run_benchmark("scale.py", "--data", str(CMRC_DEV), "--paragraphs", "12", "--sizes", "1000,2000",
                           "--memory-headroom-mb", "100000000", "--questions", "3", "--ask-questions", "1",
                           "--routes", "hybrid", "--cache", str(cache), "--workdir", str(tmp_path), cwd=tmp_path)
    assert second["cmrc"]["embedded"] == 0                   # the persistent cache held every chunk vector
    assert [row["chunks"] for row in second["sizes"]] == [cmrc["chunks"]]
    assert set(second["sizes"][0]["retrieval"]) == {"hybrid"}
    too_big, larger = second["skipped"]
    assert too_big["chunks"] == 1000 and "memory" in too_big["reason"] and too_big["estimate"]["memory_mb"] > 0
    assert larger == {"chunks": 2000, "reason": "a smaller size was already out of reach"}
    assert not any(path.name.startswith("scale-") for path in tmp_path.iterdir())   # data directories removed


def test_answerability_fits_on_the_first_half_and_reports_both(tmp_path: Path) -> None:
    result = run_benchmark("answerability.py", "--cmrc", str(CMRC_DEV), "--paragraphs", "12",
                           "--home", str(tmp_path / "home"), cwd=tmp_path)

    assert result["questions"] > 20
    # Most questions asked without their own paragraph lack the answer in what is read.
    assert result["unanswerable_without_own_paragraph"] > result["questions"] / 2
    fitted = result["fitted_on_first_half"]
    assert set(fitted["weights"]) == set(result["in_code"]["weights"])
    assert fitted["weights"]["unit_coverage"] > 0      # more of the question in the unit: more likely answerable
    for half in ("first", "second"):
        unchecked = result["no_check"][half]
        previous = unchecked
        for bar in ("0.05", "0.1", "0.15", "0.2", "0.3"):
            checked = result["in_code_by_bar"][bar][half]
            # A higher bar refuses more of what lacks the answer and keeps no more of what holds it.
            assert checked["unanswerable_refused"] >= previous["unanswerable_refused"]
            assert checked["containment"] <= previous["containment"]
            previous = checked


@pytest.mark.slow   # three replicas started, a Milvus server and a PostgreSQL
def test_load_serves_distinct_and_repeated_questions_from_one_and_two_replicas(tmp_path: Path) -> None:
    result = run_benchmark(
        "load.py", "--users", "1,2", "--seconds", "2", "--replicas", "1,2", "--engines", "llm", "--paragraphs", "30",
        "--repeated", "3", "--token-delay-ms", "20", "--data", str(CMRC_DEV),
        "--cache", str(tmp_path / "embeddings.sqlite"), "--workdir", str(tmp_path), cwd=tmp_path)

    assert result["knowledge_base"]["paragraphs"] == 30 and result["knowledge_base"]["chunks"] >= 30
    assert result["questions"]["pool"] > 64 and result["questions"]["distinct_asked"] > 0
    assert result["stores"]["catalog"] in ("postgresql", "sqlite")
    (engine,) = result["engines"]
    assert engine["engine"] == "llm"
    measured = [(run["replicas"], run["users"], run["questions"]) for run in engine["runs"]]
    assert measured == [(replicas, users, kind) for replicas in (1, 2) for users in (1, 2)
                        for kind in ("distinct", "repeated")]
    for run in engine["runs"]:
        assert run["requests"] >= run["users"] and run["errors"] == 0 and run["fallbacks"] == 0
    assert [(row["users"], row["questions"]) for row in engine["replica_ratio"]] == [
        (1, "distinct"), (1, "repeated"), (2, "distinct"), (2, "repeated")]
    assert all(row["ratio"] > 0 for row in engine["replica_ratio"])
    assert not any(path.name.startswith("load-") for path in tmp_path.iterdir())   # working directory removed
