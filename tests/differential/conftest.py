"""The Kafka Streams side of the differential test: one JVM for the session, outputs kept per case."""

from __future__ import annotations

import pytest

from diff_records import records
from streamlet.testing.kstreams_diff import OutRecord, ReferenceDriver


@pytest.fixture(scope="session")
def kstreams():
    """A TopologyTestDriver JVM (built by Maven the first time; no Java or Maven fails, never skips)."""
    with ReferenceDriver() as driver:
        yield driver


@pytest.fixture(scope="session")
def reference(kstreams):
    """``reference(topology, seed, null_keys)`` → (records, Kafka Streams' outputs), once per session."""
    cache: dict[tuple[str, int, bool], tuple[list[dict], list[OutRecord]]] = {}

    def get(topology: str, seed: int, null_keys: bool) -> tuple[list[dict], list[OutRecord]]:
        if (topology, seed, null_keys) not in cache:
            recs = records(topology, seed, null_keys=null_keys)
            cache[topology, seed, null_keys] = (recs, kstreams.run(topology, recs))
        return cache[topology, seed, null_keys]

    return get
