"""The benchmark cases of DESIGN §6, one module each (``stateful`` → ``stateful.py``).

A case module defines:

* ``BASELINE`` — the name of what it compares against (e.g. ``"raw-loop"``);
* ``run(opts) -> CaseResult`` — load data into a broker of its own, measure both
  sides (through :func:`benchmarks.harness.run_side`), check the outputs;
* its sides: functions decorated with :func:`benchmarks.harness.side_entry`
  that ``benchmarks/side.py`` runs in a fresh process.

A case listed here but without a module is "not built yet" and says so.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

#: Every case of the contract, in the order ``all`` runs them.
CASES = ("stateless", "stateful", "join", "restore", "restart", "window", "table-join", "avro", "http", "eos",
         "failover", "rolling-restart", "scaling")
#: cases that need a real broker (``--broker kafka``): ``all`` on the embedded broker leaves them out
KAFKA_ONLY = ("eos",)


class CaseNotBuilt(LookupError):
    """The case is part of the contract but its module does not exist yet."""


class UnknownCase(LookupError):
    """No such case in the contract."""


@dataclass
class Options:
    records: int = 1_000_000
    partitions: int = 32
    keys: int = 10_000
    repeat: int = 1
    profile_dir: str | None = None
    #: ``embedded`` (``streamlet broker``, the mock) or ``kafka`` (a real Apache Kafka broker)
    broker: str = "embedded"
    #: librdkafka settings applied on top of streamlet's defaults, on both sides
    client_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseResult:
    case: str
    records: int
    streamlet_rps: float
    baseline: str
    baseline_rps: float
    peak_rss_mb: float
    seconds: float
    #: extra rows for the readable table: (label, value)
    details: list[tuple[str, str]] = field(default_factory=list)
    #: extra keys appended to the JSON line
    extra: dict[str, Any] = field(default_factory=dict)
    #: records/s of the same work as a Kafka Streams application (``--broker kafka`` only)
    kafka_streams_rps: float | None = None

    @property
    def ratio(self) -> float:
        return self.streamlet_rps / self.baseline_rps if self.baseline_rps else 0.0

    @property
    def kafka_streams_ratio(self) -> float | None:
        """streamlet / Kafka Streams (records/s), when Kafka Streams ran."""
        if not self.kafka_streams_rps:
            return None
        return self.streamlet_rps / self.kafka_streams_rps

    def contract(self) -> dict[str, Any]:
        """The last line of ``benchmarks/run.py`` (DESIGN §6)."""
        return {"case": self.case, "records": self.records,
                "streamlet_rps": round(self.streamlet_rps, 1), "baseline": self.baseline,
                "baseline_rps": round(self.baseline_rps, 1), "ratio": round(self.ratio, 3),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "seconds": round(self.seconds, 3),
                **self.extra, **self._kafka_streams_keys()}

    def _kafka_streams_keys(self) -> dict[str, Any]:
        if self.kafka_streams_rps is None:
            return {}
        return {"kafka_streams_rps": round(self.kafka_streams_rps, 1),
                "kafka_streams_ratio": round(self.kafka_streams_ratio or 0.0, 3)}


def module_name(case: str) -> str:
    return "benchmarks.cases." + case.replace("-", "_")


def load(case: str) -> ModuleType:
    """The module of ``case``; a clear error when it is unknown or not built yet."""
    if case not in CASES:
        raise UnknownCase(f"unknown benchmark case {case!r}; the cases are: {', '.join(CASES)} (or 'all')")
    name = module_name(case)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise CaseNotBuilt(
            f"benchmark case {case!r} is not built yet (it lands with the issue that builds the "
            f"feature, as benchmarks/cases/{case.replace('-', '_')}.py); built cases: {', '.join(built())}"
        ) from None


def built(broker: str | None = None) -> list[str]:
    """The cases whose module exists, in contract order; given ``broker="embedded"``, without
    the cases that need a real broker (:data:`KAFKA_ONLY`)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [c for c in CASES if os.path.exists(os.path.join(here, c.replace("-", "_") + ".py"))
            and not (broker == "embedded" and c in KAFKA_ONLY)]
