"""streamlet's TestDriver against Kafka Streams' TopologyTestDriver on the same seeded records.

Each topology of diff_topologies.py runs on both sides (record caches off: streamlet has none in its
TestDriver, Kafka Streams gets ``statestore.cache.max.bytes=0``); the output records of every output
topic must be the same, in the same order. Known differences are strict xfails naming the difference
(docs/testing.md lists them).
"""

from __future__ import annotations

import pytest

from diff_records import by_topic, first_difference, run_streamlet
from diff_topologies import TOPOLOGIES

SEEDS = [0, 1, 2, 3]
#: topology → how streamlet's keys and values differ from Kafka Streams' (a strict xfail)
_SKIPPED_WINDOWS = (
    "emit final: Kafka Streams 4.4 (TopologyTestDriver) never emits some windows that hold records — every "
    "key's hopping window [3500, 5000) with seed 0, the sliding windows ending in 4200–4250 with seed 2, both "
    "after stream time jumps — though later windows are emitted; streamlet emits every window once, as "
    "EmitStrategy.onWindowClose() documents. The windows both emit are equal, in the same order")
DIFFERENT: dict[str, str] = {"windowed-final-hopping": _SKIPPED_WINDOWS, "sliding-final": _SKIPPED_WINDOWS}
#: topology → how only the timestamps differ
DIFFERENT_TIMESTAMPS: dict[str, str] = {}
#: topologies whose known difference some seeds' records do not reach (a non-strict xfail)
SOMETIMES = {"windowed-final-hopping", "sliding-final"}
#: topology → how it differs only when some stream records have no key
DIFFERENT_NULL_KEYS: dict[str, str] = {}


def cases(known: dict[str, str], null_keys: bool = False):
    topologies = [t for t in TOPOLOGIES if not null_keys or "in" in TOPOLOGIES[t][2]]
    # only a comparison that fails is the expected failure: a broken reference fails these tests too
    marks = {t: [pytest.mark.xfail(strict=t not in SOMETIMES, raises=AssertionError, reason=r)]
             for t, r in known.items()}
    return [pytest.param(t, seed, id=f"{t}-{seed}", marks=marks.get(t, []))
            for t in topologies for seed in SEEDS]


def compare(reference, topology: str, seed: int, null_keys: bool, timestamps: bool) -> None:
    recs, theirs = reference(topology, seed, null_keys)
    ours = by_topic(run_streamlet(topology, recs), timestamps)
    theirs_by_topic = by_topic(theirs, timestamps)
    assert ours == theirs_by_topic, first_difference(ours, theirs_by_topic)


@pytest.mark.parametrize("topology,seed", cases(DIFFERENT))
def test_same_keys_and_values(reference, topology: str, seed: int) -> None:
    """Same (key, value) records per output topic, in the same order."""
    compare(reference, topology, seed, False, timestamps=False)


@pytest.mark.parametrize("topology,seed", cases({**DIFFERENT, **DIFFERENT_TIMESTAMPS}))
def test_same_timestamps(reference, topology: str, seed: int) -> None:
    """The same, timestamps of the output records included."""
    compare(reference, topology, seed, False, timestamps=True)


@pytest.mark.parametrize("topology,seed", cases({**DIFFERENT, **DIFFERENT_NULL_KEYS}, null_keys=True))
def test_same_outputs_with_keyless_records(reference, topology: str, seed: int) -> None:
    """The same (key, value) records when some stream records have no key."""
    compare(reference, topology, seed + 100, True, timestamps=False)
