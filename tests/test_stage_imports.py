"""Data flows one way (loader → splitter → embedder → store → retriever → generator): a stage imports the shared
modules (types, normalize, text/) and the stages it hands its output to or takes its input from, never one further
down the line. Ingestion writes into the store; retrieval reads from it and never knows how answers are made. The
one exception is named: query transforms in retrieve/ call an LLM through the generator stage's client."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tecorag"
LATER = {"ingest": ("retrieve", "generate"), "embed": ("ingest", "store", "retrieve", "generate"),
         "store": ("retrieve", "generate"), "retrieve": ("generate",),
         "text": ("ingest", "embed", "store", "retrieve", "generate")}
ALLOWED = {("retrieve/transform.py", "generate.llm")}


def imported_packages(path: Path) -> set[str]:
    """The tecorag modules a file imports, relative to the package ("generate.extractive")."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            here = path.relative_to(PACKAGE).parent.parts
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            modules.add(".".join((*base, *(node.module or "").split("."))).strip("."))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tecorag."):
            modules.add(node.module.removeprefix("tecorag."))
    return modules


def test_no_stage_imports_a_later_one() -> None:
    offences = []
    for stage, later in LATER.items():
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            name = path.relative_to(PACKAGE).as_posix()
            for module in imported_packages(path):
                if module.split(".")[0] in later and (name, module) not in ALLOWED:
                    offences.append(f"{name} imports {module}")
    assert offences == []
