"""While a broker is down the worker's log stays readable: librdkafka's repeated connection errors
come out once per kind and interval (streamlet/runtime/client_logs.py), and nothing is lost.

Measured before the filter, same set-up (mock, 20 s outage, one stateless worker): 441 librdkafka
lines, 387 of them one consumer's "Connect to ... failed: Connection refused".
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_io import committed, produce, read_all, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 4
OUTAGE_MS = 20_000
SCRIPT = """
import streamlet as sl

app = sl.App("outage-logs")
app.stream("in").map_values(lambda v: {**v, "seen": True}).to("out")
"""
#: a line librdkafka wrote: on stderr itself ("%3|1712...|FAIL|rdkafka#consumer-1| ...") or through
#: Python logging (the streamlet.kafka logger)
CLIENT_LINE = re.compile(r"^%\d\|[\d.]+\||^\S+ \S+ \w+ streamlet\.kafka: ", re.M)


@pytest.mark.faults
def test_a_20_s_outage_logs_a_bounded_number_of_client_lines_and_loses_nothing(tmp_path: Path, broker: Any,
                                                                              report: Any) -> None:
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    script = tmp_path / "outage_logs.py"
    script.write_text(textwrap.dedent(SCRIPT))
    produce(broker.bootstrap, "in", [(f"k{n % 10}", {"n": n}) for n in range(1_000)])
    w = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state", "w")
    wait_until(lambda: sum(max(o, 0) for o in committed(broker.bootstrap, "outage-logs", "in",
                                                        PARTITIONS).values()) == 1_000,
               60, "the first 1,000 records committed", workers=[w])
    before = len(CLIENT_LINE.findall(w.text()))
    broker.outage(for_ms=OUTAGE_MS)
    produce(broker.bootstrap, "in", [(f"k{n % 10}", {"n": n}) for n in range(1_000, 2_000)])  # retried
    broker.wait_recovered(60)
    wait_committed(broker.bootstrap, "outage-logs", "in", PARTITIONS, 120, [w])
    during = len(CLIENT_LINE.findall(w.text())) - before
    assert w.stop() == 0
    report(f"{during} librdkafka log lines during a {OUTAGE_MS // 1000} s outage")
    assert during <= 20, f"{during} client log lines in a {OUTAGE_MS // 1000} s outage:\n{w.tail(6000)}"
    assert during >= 1, "the outage must show in the log"
    out = sorted(orjson.loads(m.value())["n"] for m in read_all(broker.bootstrap, "out", PARTITIONS))
    assert set(out) == set(range(2_000)), "every record has its output after the outage"
    # the summaries come at the latest when the worker exits
    assert re.search(r"more like it in the last \d+ s\)", w.text()), w.tail(6000)
