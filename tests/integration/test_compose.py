"""docker-compose.yml is a valid compose file, as the docker client itself reads it.

Runs `docker compose config` (or the standalone `docker-compose config`) when a
client with compose is installed; otherwise the test is skipped and says why.
No container is started.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose_command() -> list[str]:
    """The compose command of this machine, or a skip that names what is missing."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone]
    if docker is None:
        pytest.skip("no docker client on PATH, so `docker compose config` cannot check docker-compose.yml")
    pytest.skip(f"the docker client at {docker} has no compose plugin (`docker compose version` failed) "
                "and there is no docker-compose binary")


def test_docker_compose_config_accepts_the_file() -> None:
    if not COMPOSE_FILE.exists():
        pytest.skip(f"{COMPOSE_FILE} does not exist yet")
    cmd = compose_command()
    result = subprocess.run([*cmd, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                            timeout=60, cwd=COMPOSE_FILE.parent)
    assert result.returncode == 0, f"`{' '.join(cmd)} config` rejected docker-compose.yml:\n{result.stderr}"
    config = result.stdout
    assert "STREAMLET_BROKERS" in config, "the worker service must get its brokers from STREAMLET_BROKERS"
