"""docker-compose.yml agrees with the example it runs (no docker needed).

`docker compose config` itself runs in tests/integration/test_compose.py when a
compose client is installed; these checks hold everywhere.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from streamlet.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def service(name: str) -> str:
    """The text of one top-level service of the compose file."""
    match = re.search(rf"^  {re.escape(name)}:\n(.*?)(?=^  \S|^\S|\Z)", COMPOSE, re.M | re.S)
    assert match, f"no service {name!r} in docker-compose.yml"
    return match.group(1)


def env(service_text: str, name: str) -> str:
    match = re.search(rf"^\s+{name}: (.+)$", service_text, re.M)
    assert match, f"{name} is not set"
    return match.group(1).strip().strip('"')


def worker_script() -> str:
    cmd = re.search(r'command: \["streamlet", "run", "([^"]+)"\]', service("worker"))
    assert cmd, "the worker must run `streamlet run SCRIPT`"
    return cmd.group(1)


def test_services() -> None:
    for name in ("kafka", "kafka-init", "schema-registry", "worker"):
        service(name)
    assert "image: apache/kafka:" in service("kafka")
    assert "image: confluentinc/cp-schema-registry:" in service("schema-registry")


def test_kafka_runs_kraft_with_a_valid_cluster_id() -> None:
    kafka = service("kafka")
    assert env(kafka, "KAFKA_PROCESS_ROLES") == "broker,controller"
    assert "ZOOKEEPER" not in kafka
    cluster_id = env(kafka, "CLUSTER_ID")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "a KRaft cluster id is a base64 UUID"
    node, _, voter = env(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS").partition("@")
    assert node == env(kafka, "KAFKA_NODE_ID")
    assert voter.endswith(":9093") and "CONTROLLER://:9093" in env(kafka, "KAFKA_LISTENERS")


def test_worker_reaches_kafka_through_streamlet_brokers_on_an_advertised_listener() -> None:
    brokers = env(service("worker"), "STREAMLET_BROKERS")
    advertised = env(service("kafka"), "KAFKA_ADVERTISED_LISTENERS")
    assert f"PLAINTEXT://{brokers}" in advertised.split(","), (brokers, advertised)
    assert env(service("schema-registry"), "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS") == f"PLAINTEXT://{brokers}"


def test_kafka_init_creates_every_topic_of_the_worker_script() -> None:
    # auto-creation is off, so the worker would stop at start on a missing topic
    assert env(service("kafka"), "KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false"
    loop = re.search(r"for t in ([^;]+); do", service("kafka-init"))
    assert loop, "kafka-init must create the topics in a `for t in ...` loop"
    created = set(shlex.split(loop.group(1)))
    script = worker_script()
    assert (ROOT / script).is_file()
    listed = CliRunner().invoke(cli, ["topics", str(ROOT / script)])
    assert listed.exit_code == 0, listed.output
    needed = {line.split()[1] for line in listed.output.splitlines()
              if line.split()[0] in ("input", "output", "dead-letter")}
    assert needed == created


def test_worker_image_copies_what_pip_install_needs() -> None:
    assert re.search(r"^      dockerfile: Dockerfile\b", service("worker"), re.M), "the worker builds ./Dockerfile"
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.M)
    assert copied
    for source in copied:
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: no such file in the repository"
    assert "pip install" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored  # a small, fast build context
