"""Shared test options: which brokers the integration suite runs against."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--broker", default="mock", choices=["mock", "tansu", "both"],
                     help="broker(s) for integration tests: the embedded mock, Tansu, or both")
