"""`streamlet broker [--kafka] --topic ... --script ...`: the contract of DESIGN §3 on both brokers it hosts.

The first stdout line is ``bootstrap: HOST:PORT``, the bootstrap file holds the same address, the
topics asked for and those of the script exist (internal ones with their partition counts and, on
Kafka, their configs), and SIGTERM ends the process with exit 0 — the Kafka JVM and its data gone.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamlet.broker.admin import KafkaTopicAdmin
from tests.integration.procs import terminate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SCRIPT = """
import streamlet as sl
app = sl.App("cli-broker-app", on_error="dead_letter")
orders = app.stream("orders")
orders.filter(lambda k, v: True).to("out")
orders.group_by(lambda k, v: v["u"]).count(name="per-user")
"""


def test_broker_command_creates_the_script_topics_and_stops_on_sigterm(tmp_path: Path,
                                                                       broker_kind: str) -> None:
    if broker_kind == "tansu":
        pytest.skip("`streamlet broker` hosts the embedded broker or, with --kafka, Kafka; not Tansu")
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    bootstrap_file = tmp_path / "bootstrap.txt"
    args = [sys.executable, "-m", "streamlet", "broker", "--topic", "extra:2", "--script", str(script),
            "--partitions", "3", "--bootstrap-file", str(bootstrap_file)]
    if broker_kind == "kafka":
        args.append("--kafka")
    log = tmp_path / "broker.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("bootstrap: "), f"{first!r}\n{log.read_text()}"
        bootstrap = first.split(": ", 1)[1].strip()
        assert bootstrap_file.read_text().strip() == bootstrap
        admin = KafkaTopicAdmin(bootstrap, {})
        topics = {t: n for t, n in admin.partitions().items() if not t.startswith("__")}
        assert topics == {"extra": 2, "orders": 3, "out": 3, "cli-broker-app-per-user-repartition": 3,
                          "cli-broker-app-per-user-changelog": 3, "cli-broker-app-dead-letter": 1}
        if broker_kind == "kafka":
            assert admin.topic_config("cli-broker-app-per-user-changelog")["cleanup.policy"] == "compact"
            assert admin.topic_config("cli-broker-app-per-user-repartition")["cleanup.policy"] == "delete"
        admin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        terminate(proc)
    port = int(bootstrap.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    if broker_kind == "kafka":
        data = re.search(r"log: (\S+)/kafka\.log", log.read_text())
        assert data, log.read_text()
        assert not Path(data.group(1)).exists(), "the Kafka data directory was not removed"
