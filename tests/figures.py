"""Figures the suites measure, printed as one `figures:` JSON line at the end of the pytest run
(tests/conftest.py, pytest_terminal_summary). Tests add to them; none are timed."""

from __future__ import annotations

from collections import Counter
from typing import Any

FIGURES: dict[str, Any] = {}


def count(name: str, amount: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + amount


def count_in(name: str, key: str, amount: int = 1) -> None:
    FIGURES.setdefault(name, Counter())[key] += amount


def record(name: str, value: Any) -> None:
    FIGURES[name] = value
