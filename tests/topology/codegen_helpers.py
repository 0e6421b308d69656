"""Run one topology through the TestDriver with generated code on and off, and compare."""

from __future__ import annotations

from typing import Any, Callable

import streamlet as sl
from streamlet.errors import RecordError
from streamlet.testing import TestDriver
from streamlet.topology import codegen

Build = Callable[[sl.App], None]


def _run(build: Build, inputs: list[tuple[Any, ...]], generated: bool, partitions: int = 1,
         **app_kw: Any) -> tuple[dict[str, Any], list[str]]:
    old = codegen.enabled
    codegen.enabled = generated
    try:
        app = sl.App("codegen-test", **app_kw)
        build(app)
        errors: list[str] = []
        with TestDriver(app, partitions=partitions) as d:
            for item in inputs:
                topic, key, value, *rest = item
                ts = rest[0] if rest else 1000
                headers = rest[1] if len(rest) > 1 else None
                try:
                    if isinstance(value, bytes):
                        d.send_raw(topic, key.encode() if isinstance(key, str) else key, value, ts, headers)
                    else:
                        d.send(topic, key=key, value=value, timestamp=ts, headers=headers)
                except RecordError as exc:
                    errors.append(f"{exc.topic}/{exc.partition}/{exc.offset}/{exc.stage}")
            log = {t: {p: list(rs) for p, rs in parts.items()} for t, parts in d.log.items()}
        return log, errors
    finally:
        codegen.enabled = old


def _same(build: Build, inputs: list[tuple[Any, ...]], **kw: Any) -> dict[str, Any]:
    gen = _run(build, inputs, True, **kw)
    closures = _run(build, inputs, False, **kw)
    assert gen == closures
    return gen[0]
