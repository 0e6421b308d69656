"""The ``streamlet`` command: broker, run, describe, topics."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from streamlet.cli.query import query as _query
from streamlet.cli.verify import verify as _verify
from streamlet.errors import StreamletError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.version_option(package_name="streamlet")
def cli() -> None:
    """streamlet — Kafka Streams-style stream processing in Python."""


def _parse_topic(spec: str) -> tuple[str, int]:
    name, sep, count = spec.rpartition(":")
    if not sep or not name or not count.isdigit() or int(count) < 1:
        raise click.BadParameter(f"{spec!r} is not NAME:PARTITIONS (e.g. orders:8)")
    return name, int(count)


@cli.command()
@click.option("--topic", "topics", multiple=True, help="NAME:PARTITIONS to create (repeatable)")
@click.option("--script", help="create the topics this topology script reads, writes and owns")
@click.option("--partitions", default=4, show_default=True, help="partitions of topics taken from --script")
@click.option("--bootstrap-file", type=click.Path(dir_okay=False), help="also write the bootstrap servers here")
@click.option("--brokers", "broker_count", default=1, show_default=True, help="number of mock brokers")
@click.option("--kafka", "real_kafka", is_flag=True,
              help="host a real Apache Kafka broker (a JVM: needs Java 17+, and Maven the first time) "
                   "instead of the embedded one")
@click.option("--schema-registry", "schema_registry", is_flag=True,
              help="also serve a Schema Registry over HTTP on loopback (Confluent's REST API, in memory); "
                   "its URL follows the bootstrap line as 'schema-registry: http://127.0.0.1:PORT'")
@click.option("--schema-registry-port", default=0, show_default=True, help="its port (0: any free port)")
@click.option("-v", "--verbose", is_flag=True)
def broker(topics: tuple[str, ...], script: str | None, partitions: int, bootstrap_file: str | None,
           broker_count: int, real_kafka: bool, schema_registry: bool, schema_registry_port: int,
           verbose: bool) -> None:
    """Host an embedded Kafka-protocol broker (or, with --kafka, real Kafka) until SIGTERM / SIGINT."""
    _setup_logging(verbose)
    wanted = dict(_parse_topic(t) for t in topics)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    registry = _start_registry(schema_registry_port) if schema_registry else None
    try:
        if real_kafka:
            if broker_count != 1:
                raise click.UsageError("--brokers sets the number of embedded brokers; "
                                       "--kafka starts one Kafka node")
            _serve_kafka(wanted, script, partitions, bootstrap_file, stop, registry)
            return
        from streamlet.broker.server import BrokerServer

        server = BrokerServer(brokers=broker_count, topics=wanted).start()
        try:
            if script:
                for name, (count, _) in _script_topics(script, wanted, partitions).items():
                    server.cluster.create_topic(name, count)
            _announce(server.bootstrap_servers, bootstrap_file, registry)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        if registry is not None:
            registry.stop()


def _start_registry(port: int) -> Any:
    """The embedded Schema Registry, started; scripts loaded here (``--script``) find it through
    ``STREAMLET_SCHEMA_REGISTRY_URL``."""
    from streamlet.broker.registry import RegistryServer

    try:
        registry = RegistryServer(port=port).start()
    except OSError as exc:
        raise click.ClickException(f"cannot serve the schema registry on port {port}: {exc}") from exc
    os.environ["STREAMLET_SCHEMA_REGISTRY_URL"] = registry.url
    logging.getLogger("streamlet.broker").info("schema registry serving on %s", registry.url)
    return registry


def _script_topics(script: str, wanted: dict[str, int],
                   partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
    """The topics SCRIPT reads, writes and owns (inputs and outputs not in ``wanted``, internal
    topics, its dead-letter topic): name → (partitions, topic config)."""
    from streamlet.cli.loader import load_app
    from streamlet.runtime.topics import internal_partitions

    app = load_app(script)
    topo = app.topology  # type: ignore[attr-defined]
    external = {t: partitions for t in topo.external_source_topics() + topo.external_sink_topics()
                if t not in wanted}
    out: dict[str, tuple[int, dict[str, str]]] = {t: (n, {}) for t, n in external.items()}
    for name, count in internal_partitions(topo, {**external, **wanted}, partitions).items():
        out[name] = (count, dict(topo.internal_topics[name].config))
    if app.config.on_error == "dead_letter":  # type: ignore[attr-defined]
        out[app.config.dead_letter] = (1, {})  # type: ignore[attr-defined]
    return out


def _announce(bootstrap: str, bootstrap_file: str | None, registry: Any = None) -> None:
    """The contract of `streamlet broker`: the first stdout line is ``bootstrap: HOST:PORT``; with
    ``--schema-registry`` the second is ``schema-registry: URL``."""
    if bootstrap_file:
        tmp = bootstrap_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(bootstrap + "\n")
        os.replace(tmp, bootstrap_file)
    click.echo(f"bootstrap: {bootstrap}")
    if registry is not None:
        click.echo(f"schema-registry: {registry.url}")
    sys.stdout.flush()


def _serve_kafka(wanted: dict[str, int], script: str | None, partitions: int, bootstrap_file: str | None,
                 stop: threading.Event, registry: Any = None) -> None:
    """`streamlet broker --kafka`: a real Kafka node, its topics created through the Admin API."""
    from streamlet.broker.admin import KafkaTopicAdmin
    from streamlet.testing.kafka import KafkaBroker

    log = logging.getLogger("streamlet.broker")
    kafka = KafkaBroker()
    try:
        kafka.start()
        log.info("Kafka broker started in %.1f s (log: %s)", kafka.start_seconds, kafka.log_path)
        admin = KafkaTopicAdmin(kafka.bootstrap_servers, {})
        for name, count in wanted.items():
            admin.create({name: count})
        if script:
            for name, (count, config) in _script_topics(script, wanted, partitions).items():
                admin.create({name: count}, config or None)
        admin.close()
        _announce(kafka.bootstrap_servers, bootstrap_file, registry)
        while not stop.wait(0.5):
            if kafka.proc is not None and kafka.proc.poll() is not None:
                raise click.ClickException(f"the Kafka broker exited ({kafka.proc.returncode}); its log "
                                           "ends:\n"
                                           + kafka.log_path.read_text(errors="replace")[-3000:])
    except StreamletError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        kafka.stop()


@cli.command()
@click.argument("script")
@click.option("--brokers", help="host:port[,...] or 'embedded' (env STREAMLET_BROKERS)")
@click.option("--state-dir", help="state directory (env STREAMLET_STATE_DIR)")
@click.option("--guarantee", type=click.Choice(["at_least_once", "exactly_once"]),
              help="processing guarantee (env STREAMLET_GUARANTEE)")
@click.option("--schema-registry", "schema_registry",
              help="URL of the Schema Registry of serde.avro() serdes given none "
                   "(env STREAMLET_SCHEMA_REGISTRY_URL)")
@click.option("--application-server", "application_server",
              help="HOST:PORT of this worker's HTTP side: health, readiness, metrics, queries "
                   "(env STREAMLET_APPLICATION_SERVER)")
@click.option("-v", "--verbose", is_flag=True)
def run(script: str, brokers: str | None, state_dir: str | None, guarantee: str | None,
        schema_registry: str | None, application_server: str | None, verbose: bool) -> None:
    """Run the App that SCRIPT builds until SIGTERM / SIGINT (then commit and exit 0; exit 124 when that
    takes longer than shutdown_grace_ms, env STREAMLET_SHUTDOWN_GRACE_MS, default 25 s)."""
    _setup_logging(verbose)
    for env, value in (("STREAMLET_BROKERS", brokers), ("STREAMLET_STATE_DIR", state_dir),
                       ("STREAMLET_GUARANTEE", guarantee), ("STREAMLET_SCHEMA_REGISTRY_URL", schema_registry),
                       ("STREAMLET_APPLICATION_SERVER", application_server)):
        if value:
            os.environ[env] = value
    from streamlet.cli.loader import load_app

    try:
        app = load_app(script)
        app.run()  # type: ignore[attr-defined]
    except StreamletError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except NotImplementedError as exc:
        click.echo(f"error: not implemented yet: {exc}", err=True)
        sys.exit(2)


@cli.command()
@click.argument("script")
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid"]), default="text", show_default=True)
def describe(script: str, fmt: str) -> None:
    """Print the topology SCRIPT builds (text, or a Mermaid diagram)."""
    from streamlet.cli.loader import load_app

    try:
        click.echo(load_app(script).describe(fmt))  # type: ignore[attr-defined]
    except StreamletError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.argument("script")
@click.option("--partitions", default=None, type=int, help="partition count of the input topics, if known")
def topics(script: str, partitions: int | None) -> None:
    """List the topics SCRIPT reads, writes, and owns (internal), with partition counts."""
    from streamlet.cli.loader import load_app
    from streamlet.runtime.topics import internal_partitions

    app = load_app(script)
    topo = app.topology  # type: ignore[attr-defined]
    known = {t: partitions for t in topo.external_source_topics()} if partitions else {}
    internal = internal_partitions(topo, known, partitions or 0)
    for t in topo.external_source_topics():
        click.echo(f"input     {t}" + (f"  partitions={partitions}" if partitions else ""))
    for t in topo.external_sink_topics():
        click.echo(f"output    {t}")
    for name, n in internal.items():
        kind = topo.internal_topics[name].kind
        click.echo(f"{kind:<9} {name}  partitions={n or 'same as input'}")
    if app.config.on_error == "dead_letter":  # type: ignore[attr-defined]
        click.echo(f"dead-letter {app.config.dead_letter}")  # type: ignore[attr-defined]


def main() -> None:
    cli()


cli.add_command(_query)
cli.add_command(_verify)


if __name__ == "__main__":
    main()
