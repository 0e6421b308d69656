"""Generated chains (streamlet.topology.codegen) behave exactly like the closures they replace.

Each topology runs twice through the TestDriver — generated code on, then off —
and everything written (topic, partition, key and value bytes, timestamp,
headers, order) and every error must be the same.
"""

from __future__ import annotations

import traceback
from typing import Any

import orjson
import pytest

import streamlet as sl
from streamlet.record import Record
from streamlet.testing import TestDriver
from streamlet.topology import codegen

from codegen_helpers import Build, _run, _same


ORDERS = [("orders", f"k{i % 3}", {"amount": i * 40, "n": i}, 1000 + i) for i in range(8)]


def test_filter_map_values_to() -> None:
    def build(app: sl.App) -> None:
        (app.stream("orders").filter(lambda k, v: v["amount"] > 100)
            .map_values(lambda v: {**v, "big": True}).to("big"))

    log = _same(build, ORDERS)
    assert sum(len(r) for r in log["big"].values()) == 5


def test_every_stateless_kind() -> None:
    def build(app: sl.App) -> None:
        s = app.stream("orders")
        s.filter_not(lambda k, v: v["n"] % 2).map(lambda k, v: (k + "!", v["n"])).to(
            "mapped", value_serde=sl.serde.json())
        s.flat_map(lambda k, v: [(k, i) for i in range(v["n"] % 3)]).to("flat")
        s.flat_map_values(lambda v: [v["n"], None]).to("flatv")
        s.select_key(lambda k, v: None if v["n"] == 3 else str(v["n"])).peek(lambda k, v: None).to("rekeyed")
        s.map_values(lambda v: None).to("tombstones")
        s.foreach(lambda k, v: None)

    _same(build, ORDERS)


def test_split_with_and_without_default() -> None:
    def build(app: sl.App) -> None:
        s = app.stream("orders")
        b = (s.split(name="s-").branch(lambda k, v: v["amount"] > 200, name="big")
             .branch(lambda k, v: v["amount"] > 50, name="mid").default_branch(name="small"))
        b["s-big"].to("big")
        b["s-mid"].map_values(lambda v: v["n"]).to("mid")
        b["s-small"].to("small")
        first, second = s.branch(lambda k, v: v["n"] < 2, lambda k, v: v["n"] < 5)
        first.to("first")
        second.to("second")
        only_default = s.split(name="d-").default_branch(name="all")
        only_default["d-all"].to("all")

    log = _same(build, ORDERS)
    assert set(log) >= {"big", "mid", "small", "first", "second", "all"}


def test_merge_process_and_partitioner_run_through_closures() -> None:
    def build(app: sl.App) -> None:
        a = app.stream("orders")
        b = app.stream("refunds")
        merged = a.filter(lambda k, v: v["n"] > 1).merge(b)
        merged.process(lambda r: r._replace(value={"v": r.value, "off": r.offset},
                                            timestamp=r.timestamp + 1)).to("processed")
        merged.to("by-hand", partitioner=lambda k, v, n: 0)

    inputs = ORDERS + [("refunds", "k1", {"amount": 5, "n": 99}, 2000)]
    log = _same(build, inputs, partitions=2)
    assert log["processed"]


def test_timestamps_and_headers_travel() -> None:
    def build(app: sl.App) -> None:
        app.stream("orders").map_values(lambda v: v).to("out")

    inputs = [("orders", "a", {"n": 1}, 5, [("h", b"1")]), ("orders", "b", {"n": 2}, 0, None),
              ("orders", None, None, 7, [("x", b"")])]
    log = _same(build, inputs)
    assert [(r[2], r[3]) for r in log["out"][0]] == [(5, [("h", b"1")]), (0, None), (7, [("x", b"")])]


def test_key_bytes_reused_only_when_the_key_is_kept() -> None:
    seen: list[Any] = []

    class CountingString:
        name = "counting"

        def serialize(self, value: Any) -> bytes | None:
            seen.append(value)
            return None if value is None else value.encode()

        def deserialize(self, data: bytes | None) -> Any:
            return None if data is None else data.decode()

    def build(app: sl.App) -> None:
        s = app.stream("orders", key_serde=CountingString())
        s.filter(lambda k, v: True).to("kept")  # same serde: input key bytes, no serialize call
        s.to("other-serde", key_serde=sl.serde.string())
        s.select_key(lambda k, v: k.upper()).to("rekeyed")

    log = _same(build, ORDERS[:2])
    # "k0" only by TestDriver.send (once per run), "K0" only by the re-keyed sink
    assert seen.count("k0") == 2 and seen.count("K0") == 2
    assert log["rekeyed"][0][0][0] == b"K0"


@pytest.mark.parametrize("policy", ["skip", "dead_letter", "fail"])
def test_errors_follow_the_policy(policy: str) -> None:
    def boom(v: Any) -> Any:
        if v.get("n") == 2:
            raise ValueError("bad n")
        return v

    def build(app: sl.App) -> None:
        app.stream("orders").map_values(boom).to("out")

    inputs = [("orders", "a", {"n": 1}), ("orders", "b", b"{not json"), ("orders", "c", {"n": 2}),
              ("orders", "d", {"n": 3})]
    gen = _run(build, inputs, True, on_error=policy)
    closures = _run(build, inputs, False, on_error=policy)
    assert gen == closures
    if policy == "fail":
        assert gen[1] == ["orders/0/1/deserialize", "orders/0/2/process"]


def test_deep_chain_beyond_the_nesting_limit() -> None:
    def build(app: sl.App) -> None:
        s = app.stream("orders")
        for i in range(codegen.MAX_DEPTH + 10):
            s = s.filter(lambda k, v, i=i: v["n"] != i + 100).flat_map_values(lambda v: [v])
        s.to("deep")

    log = _same(build, ORDERS)
    assert len(log["deep"][0]) == len(ORDERS)


def test_tracebacks_show_generated_lines() -> None:
    def build(app: sl.App) -> None:
        app.stream("orders").map_values(lambda v: 1 / 0).to("out")

    codegen.enabled = True
    app = sl.App("codegen-tb")
    build(app)
    with TestDriver(app) as d:
        fn = d.tasks.routes["orders"][0]
        assert "map_values" in fn.__streamlet_source__
        from streamlet.record import RecordMessage

        try:
            fn(RecordMessage("orders", 0, 0, 1, None, b"k", b"{}"))
        except ZeroDivisionError:
            text = traceback.format_exc()
        assert "<streamlet chain" in text and "map_values" in text


def test_records_in_process_keep_their_metadata() -> None:
    got: list[Record] = []

    def build(app: sl.App) -> None:
        app.stream("orders").filter(lambda k, v: True).process(lambda r: got.append(r)).to("never")

    _run(build, [("orders", "a", {"n": 1}, 42, [("h", b"v")])], True)
    assert got == [Record("a", {"n": 1}, 42, "orders", 0, 0, [("h", b"v")])]


def test_stateful_nodes_behind_generated_code() -> None:
    def build(app: sl.App) -> None:
        users = app.table("users")
        orders = app.stream("orders")
        orders.filter(lambda k, v: v["n"] > 1).join(users, lambda o, u: {**o, "u": u}).to("enriched")
        orders.group_by_key().count(name="cnt").to_stream().to("counts")
        orders.map_values(lambda v: v).group_by(lambda k, v: str(v["n"] % 2)).count(name="parity")

    inputs = [("users", f"k{i}", {"name": f"user {i}"}) for i in range(3)] + ORDERS
    _same(build, inputs)


def test_key_not_decoded_when_nothing_reads_it_but_still_validated() -> None:
    seen: list[Any] = []

    def build(app: sl.App) -> None:
        s = app.stream("orders")
        s.map_values(lambda v: v).flat_map_values(lambda v: [v]).to("lazy")  # no step gets the key

    def build_reading(app: sl.App) -> None:
        s = app.stream("orders")
        s.filter(lambda k, v: seen.append(k) or True).to("eager")  # key read

    inputs = [("orders", b"plain", b'{"n": 1}'), ("orders", "caf\u00e9".encode(), b'{"n": 2}'),
              ("orders", b"\xff\xfebad", b'{"n": 3}'), ("orders", None, b'{"n": 4}')]
    for policy in ("skip", "fail"):
        log = _same(build, inputs, on_error=policy)
        keys = [r[0] for r in log.get("lazy", {}).get(0, [])]
        assert keys == [b"plain", "caf\u00e9".encode(), None]  # the bad key failed, as when decoded
        _same(build_reading, inputs, on_error=policy)
    assert "café" in seen and "plain" in seen

    app = sl.App("codegen-lazy")
    build(app)
    with TestDriver(app) as d:
        src = d.tasks.routes["orders"][0].__streamlet_source__
    assert "kb.isascii()" in src and ".decode()" in src and "k0 = None if kb is None" not in src


def test_an_aggregation_that_only_tests_the_key_leaves_it_undecoded() -> None:
    def counts_only(app: sl.App) -> None:
        app.stream("orders").group_by_key().aggregate(n=sl.agg.count(), name="n")

    def forwarded(app: sl.App) -> None:
        app.stream("orders").group_by_key().aggregate(n=sl.agg.count(), name="n").to_stream().to("out")

    for build, decoded in ((counts_only, False), (forwarded, True)):
        app = sl.App("codegen-agg-key", on_error="skip")
        build(app)
        with TestDriver(app) as d:
            src = d.tasks.routes["orders"][0].__streamlet_source__
            d.send("orders", key="k1", value={"x": 1})
            d.send_raw("orders", b"\xff\xfebad", b'{"x": 2}')  # not UTF-8: fails as when decoded
            d.send("orders", key="k1", value={"x": 3})
            assert dict(d.store("n").items()) == {"k1": {"n": 2}}
        assert ("k0 = None if kb is None" in src) is decoded


def _aggregate_run(build: Build, generated: bool) -> tuple[dict[str, Any], list[Any], str]:
    old = codegen.enabled
    codegen.enabled = generated
    try:
        app = sl.App("codegen-agg", on_error="skip")
        build(app)
        with TestDriver(app) as d:
            for i in range(30):
                d.send("orders", key=f"k{i % 4}", value={"amount": i if i % 5 else None, "n": i},
                       timestamp=1000 + i)
            d.send_raw("orders", b"k1", b"not json")
            d.send("orders", key=None, value={"amount": 1, "n": 99})
            d.send("orders", key="k2", value=None)
            d.redeliver("orders", from_offset=10)  # replays change nothing
            src = d.tasks.routes["orders"][0].__streamlet_source__ if generated else ""
            out = d.read("out") if "out" in d.log else []
            return dict(d.store("agg").items()), out, src
    finally:
        codegen.enabled = old


@pytest.mark.parametrize("shape", ["table-only", "forwarded", "after-filter", "flat-map-values", "by-timestamp",
                                   "failing-column"])
def test_a_named_aggregation_written_inline_behaves_like_its_closure(shape: str) -> None:
    def build(app: sl.App) -> None:
        s = app.stream("orders")
        if shape == "after-filter":
            s = s.filter(lambda k, v: v["n"] % 3 != 0).map_values(lambda v: {**v, "amount": v["n"]})
        if shape == "flat-map-values":
            s = s.flat_map_values(lambda v: [v, {**v, "n": v["n"] + 1000}])
        if shape == "failing-column":  # sum("n") fails on record 7 after count() has its new value
            s = s.map_values(lambda v: {**v, "n": "seven"} if v["n"] == 7 else v)
        columns: dict[str, Any] = {"n": sl.agg.count(), "first": sl.agg.earliest_by_offset("amount"),
                                   "last": sl.agg.latest_by_offset("amount"), "total": sl.agg.sum("n")}
        if shape == "by-timestamp":
            columns["newest"] = sl.agg.max_by("n", by="timestamp")
        table = s.group_by_key().aggregate(name="agg", **columns)
        if shape == "forwarded":
            table.to_stream().to("out")

    gen_store, gen_out, src = _aggregate_run(build, True)
    assert (gen_store, gen_out) == _aggregate_run(build, False)[:2]
    assert gen_store["k0"]["n"] > 0
    inline = "# aggregate agg" in src
    assert inline == (shape != "flat-map-values")  # several records per input: the closure's sequence
    if shape == "forwarded":
        assert len(gen_out) == 30  # one update per applied record: none for the bad, key-less, None ones
    if shape == "failing-column":  # record 7 (key k3) skipped whole: count() did not count it either
        assert gen_store["k3"]["n"] == 6 and gen_store["k2"]["n"] == 7


USERS_AND_ORDERS = [("users", "u1", {"tier": "gold"}), ("orders", "u1", {"n": 1}), ("orders", "u2", {"n": 2}),
                    ("users", "u2", {"tier": "silver"}), ("orders", "u2", {"n": 3}), ("users", "u1", None),
                    ("orders", "u1", {"n": 4}), ("orders", None, {"n": 5}), ("orders", "u2", None),
                    ("orders", "u2", b"not json"), ("users", "u1", {"tier": "new"}), ("orders", "u1", {"n": 6})]


@pytest.mark.parametrize("shape", ["inner", "left", "filtered-table", "rekeyed", "map-after"])
def test_a_stream_table_join_written_inline_behaves_like_its_closure(shape: str) -> None:
    def build(app: sl.App) -> None:
        users = app.table("users", name="users")
        if shape == "filtered-table":
            users = users.filter(lambda k, v: v["tier"] != "silver")
        orders = app.stream("orders")
        if shape == "rekeyed":
            orders = orders.select_key(lambda k, v: k)
        joiner = lambda o, u: {**o, "tier": None if u is None else u["tier"]}  # noqa: E731
        joined = orders.left_join(users, joiner) if shape == "left" else orders.join(users, joiner)
        if shape == "map-after":
            joined = joined.map_values(lambda v: {**v, "seen": True})
        joined.to("out")

    log = _same(build, USERS_AND_ORDERS, on_error="skip")
    values = [orjson.loads(r[1]) for r in log["out"][0]]
    assert {"n": 6, "tier": "new"} == {k: v for k, v in values[-1].items() if k != "seen"}
    if shape == "left":
        assert {"n": 4, "tier": None} in values  # the user was deleted: the left join still emits
    else:
        assert all(v["n"] != 4 for v in values)


def test_a_join_on_a_source_table_reads_its_cache_by_the_input_key_bytes() -> None:
    app = sl.App("codegen-join")
    app.stream("orders").join(app.table("users", name="users"), lambda o, u: {**o, **u}).to("out")
    with TestDriver(app) as d:
        src = d.tasks.routes["orders"][0].__streamlet_source__
        d.send("users", key="u1", value={"tier": "gold"})
        d.send("orders", key="u1", value={"n": 1})
        assert d.read("out") == [("u1", {"n": 1, "tier": "gold"})]
    assert "# join" in src and ".get(kb," in src and "k0 = kb  # not decoded" in src
