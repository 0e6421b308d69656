"""Shared test options: which brokers the integration suite runs against."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--broker", default="mock", choices=["mock", "tansu", "kafka", "both", "all"],
                     help="broker(s) for integration tests: the embedded mock, Tansu, real Apache Kafka "
                          "(Java 17+ and Maven), both (mock and Tansu) or all three")
