"""The benchmark smoke tests on a real Kafka broker (``kafka_only``) run with ``--broker=kafka|all`` only:
the integration suite's marker and deselection hooks, also when only ``tests/benchmarks`` is collected."""

from __future__ import annotations

from tests.integration.conftest import pytest_collection_modifyitems, pytest_configure

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]
