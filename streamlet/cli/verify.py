"""``streamlet verify SCRIPT --store NAME --server HOST:PORT ...``: the determinism audit
(:mod:`streamlet.testing.verify`): replay the inputs, compare with the live workers' store, list the
keys that differ. Exit 0 when none does, 1 when some do, 2 when it could not run."""

from __future__ import annotations

import os
import sys

import click

from streamlet.errors import StreamletError


@click.command()
@click.argument("script")
@click.option("--store", required=True, help="the store to compare")
@click.option("--server", "servers", multiple=True, required=True,
              help="HOST:PORT of a running worker's HTTP side (repeat for every worker)")
@click.option("--brokers", help="host:port[,...] of the brokers (env STREAMLET_BROKERS)")
@click.option("--show", default=20, show_default=True, help="differences printed per kind")
def verify(script: str, store: str, servers: tuple[str, ...], brokers: str | None, show: int) -> None:
    """Replay SCRIPT's input topics into a scratch store and diff it with the live workers' store."""
    from streamlet.cli.loader import load_app
    from streamlet.testing.verify import verify as audit

    if brokers:
        os.environ["STREAMLET_BROKERS"] = brokers
    try:
        app = load_app(script)
        bootstrap = app.config.brokers  # type: ignore[attr-defined]
        if bootstrap == "embedded":
            raise click.UsageError("verify reads the input topics of running workers: pass --brokers HOST:PORT "
                                   "(or STREAMLET_BROKERS), not the in-process embedded broker")
        report = audit(app, bootstrap, store, list(servers))
    except (StreamletError, KeyError, RuntimeError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for line in report.lines(show):
        click.echo(line)
    sys.exit(0 if report.ok else 1)
