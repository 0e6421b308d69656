"""Shared test options (which brokers the integration suite runs against) and fixtures."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


def pytest_addoption(parser):
    parser.addoption("--broker", default="mock", choices=["mock", "tansu", "kafka", "both", "all"],
                     help="broker(s) for integration tests: the embedded mock, Tansu, real Apache Kafka "
                          "(Java 17+ and Maven), both (mock and Tansu) or all three")
    parser.addoption("--registry", default="embedded", choices=["embedded", "apicurio", "all"],
                     help="schema registry(ies) for the registry integration tests: the embedded one "
                          "(`streamlet broker --schema-registry`), Apicurio Registry (built from Maven "
                          "Central with Java 17+ and Maven; skipped if it cannot be), or both")


@pytest.fixture(params=[True, False], ids=["generated", "closures"])
def generated(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Runs a test twice: chains as generated code, then as the compiled closures alone."""
    from streamlet.topology import codegen

    old = codegen.enabled
    codegen.enabled = request.param
    yield request.param
    codegen.enabled = old
