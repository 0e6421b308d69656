"""What the real-Kafka helper needs (Java, Maven, the jar folder) and the errors that say how to get it.

No JVM starts here: ``java`` and ``mvn`` are small fake scripts on a PATH of the test's own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from streamlet.errors import KafkaBrokerError
from streamlet.testing import kafka_jars
from streamlet.testing.kafka_jars import MARKER, find_java, jars_dir, kafka_version


def fake_tool(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


#: a fake mvn: counts its runs and puts a kafka jar where -DoutputDirectory= says
FAKE_MVN = """PATH=/usr/bin:/bin
echo run >> "$(dirname "$0")/runs"
for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#-DoutputDirectory=}";; esac; done
mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar" "$out/kafka-clients-9.9.9.jar"
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing on it but what the test puts in the returned folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv(kafka_jars.JARS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return bin_dir


def runs(bin_dir: Path) -> int:
    path = bin_dir / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_the_version_comes_from_the_pom() -> None:
    assert kafka_version().startswith("4.")


def test_no_java_says_how_to_install_it(tools: Path) -> None:
    with pytest.raises(KafkaBrokerError, match=r"no `java` on PATH.*openjdk-17.*JAVA_HOME"):
        find_java()


def test_a_java_home_without_java_is_named(tools: Path, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(KafkaBrokerError, match=r"JAVA_HOME=.*jdk has no bin/java"):
        find_java()


@pytest.mark.parametrize(("banner", "ok"), [('openjdk version "11.0.2" 2019-01-15', False),
                                             ('java version "1.8.0_392"', False),
                                             ('openjdk version "17.0.15" 2025-04-15', True),
                                             ('openjdk version "21" 2023-09-19', True)])
def test_java_older_than_17_is_refused(tools: Path, banner: str, ok: bool) -> None:
    java = fake_tool(tools, "java", f"echo '{banner}' >&2\n")
    if ok:
        assert find_java() == str(java)
    else:
        with pytest.raises(KafkaBrokerError, match=r"needs 17 or newer"):
            find_java()


def test_no_maven_and_no_jars_says_how_to_get_either(tools: Path) -> None:
    with pytest.raises(KafkaBrokerError, match=r"needs Maven: no `mvn` on PATH.*apt-get install maven.*"
                                               r"STREAMLET_KAFKA_JARS"):
        jars_dir()


def test_maven_builds_the_default_folder_once_and_again_when_the_pom_changes(tools: Path,
                                                                             tmp_path: Path) -> None:
    fake_tool(tools, "mvn", FAKE_MVN)
    folder = jars_dir()
    assert folder == tmp_path / "cache" / "streamlet" / f"kafka-{kafka_version()}" / "jars"
    assert (folder / "kafka_2.13-9.9.9.jar").exists() and (folder / MARKER).exists()
    assert jars_dir() == folder and runs(tools) == 1  # complete: Maven is not run again
    (folder / MARKER).write_text("the hash of an older pom\n")
    assert jars_dir() == folder and runs(tools) == 2
    assert not list(folder.parent.glob(".jars.tmp-*"))


def test_a_chosen_folder_of_jars_is_used_as_it_is(tools: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.0.0.jar").touch()
    monkeypatch.setenv(kafka_jars.JARS_ENV, str(libs))
    assert jars_dir() == libs  # no mvn on PATH, none needed


def test_an_empty_chosen_folder_is_built_into(tools: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tools, "mvn", FAKE_MVN)
    chosen = tmp_path / "my-jars"
    chosen.mkdir()
    monkeypatch.setenv(kafka_jars.JARS_ENV, str(chosen))
    assert jars_dir() == chosen and (chosen / "kafka_2.13-9.9.9.jar").exists()


def test_a_chosen_folder_of_other_files_is_refused(tools: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").touch()
    with pytest.raises(KafkaBrokerError, match=r"holds files but no kafka_2.13-\*.jar"):
        jars_dir(other)
    assert (other / "notes.txt").exists()  # never emptied by streamlet


def test_a_failing_maven_shows_its_output_and_leaves_nothing_half_built(tools: Path, tmp_path: Path) -> None:
    fake_tool(tools, "mvn", "echo 'Could not resolve dependencies: repo.maven.apache.org unreachable'\n"
                            "exit 1\n")
    with pytest.raises(KafkaBrokerError, match=r"(?s)exited 1 without Kafka's jars.*Maven Central.*"
                                               r"Could not resolve dependencies"):
        jars_dir()
    cache = tmp_path / "cache" / "streamlet" / f"kafka-{kafka_version()}"
    assert not (cache / "jars").exists() and not list(cache.glob(".jars.tmp-*"))


def test_the_packaged_maven_project_is_the_one_in_tools() -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in ("pom.xml", "log4j2.xml"):
        assert kafka_jars.build_file(name).read_bytes() == (repo / "tools" / "kafka" / name).read_bytes()
    assert os.path.islink(repo / "streamlet" / "testing" / "kafka_build")
