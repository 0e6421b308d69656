"""The test tree itself: pytest imports test modules by basename (no packages), so two modules with one
name in different folders make it refuse to collect the second — and the suite stops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_its_own_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
