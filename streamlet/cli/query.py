"""``streamlet query STORE [KEY]``: ask a running worker's HTTP side for a key of a store, or scan
it — the person-sized face of interactive queries (docs/observability.md).

    streamlet query counts alice --server orders-0.orders:8080
    streamlet query counts --from a --to m --limit 20
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import quote

import click
import orjson


@click.command()
@click.argument("store")
@click.argument("key", required=False)
@click.option("--server", default=None,
              help="HOST:PORT of a worker's HTTP side (env STREAMLET_APPLICATION_SERVER; default localhost:8080)")
@click.option("--key-format", type=click.Choice(["string", "json"]), default=None,
              help="how KEY is read (default: by the store's key serde)")
@click.option("--from", "low", default=None, help="scan: the first key")
@click.option("--to", "high", default=None, help="scan: the last key")
@click.option("--limit", default=100, show_default=True, help="scan: at most this many rows")
@click.option("--timeout", default=10.0, show_default=True, help="seconds to wait for the worker")
def query(store: str, key: str | None, server: str | None, key_format: str | None, low: str | None,
          high: str | None, limit: int, timeout: float) -> None:
    """Print the value of KEY in STORE (a worker asks the owner of the key), or scan STORE."""
    import httpx2 as httpx

    server = server or os.environ.get("STREAMLET_APPLICATION_SERVER") or "localhost:8080"
    params: dict[str, Any] = {}
    if key_format:
        params["key_format"] = key_format
    if key is None:
        path = f"/stores/{quote(store, safe='')}"
        params.update({k: v for k, v in (("from", low), ("to", high)) if v is not None})
        params["limit"] = limit
    else:
        path = f"/stores/{quote(store, safe='')}/{quote(key, safe='')}"
    try:
        r = httpx.get(f"http://{server}{path}", params=params, timeout=timeout)
    except httpx.TransportError as exc:
        click.echo(f"error: no worker answers at {server} ({exc}): pass --server HOST:PORT of a worker "
                   "started with application_server=", err=True)
        sys.exit(2)
    try:
        body = r.json()
    except ValueError:
        body = {"error": r.text}
    if r.status_code != 200:
        click.echo(f"error: {body.get('error', body)}", err=True)
        sys.exit(1)
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
