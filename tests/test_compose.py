"""docker-compose.yml is valid compose (checked by the docker client when one is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_compose_file_is_valid() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine: `docker compose config` cannot run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the docker client has no compose plugin: {probe.stderr.strip()[:200]}")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    full = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True)
    assert "STREAMLET_BROKERS: kafka:19092" in full.stdout
    assert "schema-registry" in full.stdout and "apache/kafka" in full.stdout
