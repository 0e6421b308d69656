"""Global tables in workers (`app.run()` against each broker): the whole topic on every worker, loaded
before any record is processed, kept current, restored from its own checkpoint (a restart reads only
the tail), and joined with a stream of another partition count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamlet as sl
from streamlet.runtime.global_store import GlobalStore
from streamlet.state import StateDirectory
from streamlet.state.builder import StoreBuilder
import orjson

from tests.integration.kafka_io import end_offsets, produce, read_all
from tests.integration.procs import app_in_thread
from tests.integration.test_restoring_tasks import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

GLOBAL_PARTITIONS = 3
STREAM_PARTITIONS = 2  # not the global topic's count: no co-partitioning needed
COUNTRIES = 30


def enrich(order: dict[str, Any], country: Any) -> dict[str, Any]:
    return {"n": order["n"], "country": None if country is None else country["name"]}


def build(app: sl.App) -> None:
    countries = app.global_table("countries", name="country-store")
    app.stream("orders").join(countries, enrich, key_selector=lambda k, v: v["country"]).to("enriched")


def make_app(broker: Any, state_dir: Path, app_id: str = "gt-worker") -> sl.App:
    app = sl.App(app_id, brokers=broker.bootstrap, state_dir=str(state_dir), commit_interval_ms=100,
                 config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    build(app)
    return app


def orders(start: int, count: int) -> list[tuple[str, Any]]:
    return [(f"o{i}", {"n": i, "country": f"c{i % COUNTRIES}"}) for i in range(start, start + count)]


def joined(broker: Any) -> dict[str, Any]:
    """The output records by key (each order key is written once)."""
    return {m.key().decode(): orjson.loads(m.value()) for m in read_all(broker.bootstrap, "enriched",
                                                                         STREAM_PARTITIONS)}


def create_topics(broker: Any) -> None:
    broker.create_topic("countries", GLOBAL_PARTITIONS)
    broker.create_topic("orders", STREAM_PARTITIONS)
    broker.create_topic("enriched", STREAM_PARTITIONS)


def checkpoint_on_disk(state_dir: Path, app_id: str = "gt-worker") -> dict[int, int]:
    """The global store's checkpoint as the stopped worker left it."""
    directory = StateDirectory(state_dir, app_id)
    spec = make_app_spec()
    cache = StoreBuilder(spec.name, spec.value_serde).with_caching().build(directory.open_global_store(spec.name))
    try:
        return GlobalStore(spec, cache, policy=None).checkpoint()
    finally:
        cache.close()


def make_app_spec() -> Any:
    app = sl.App("spec-only")
    build(app)
    return app.topology.global_stores["country-store"]


def test_every_stream_record_is_joined_and_a_restart_reads_only_the_tail(tmp_path: Path, broker) -> None:
    create_topics(broker)
    produce(broker.bootstrap, "countries", [(f"c{i}", {"name": f"C{i}"}) for i in range(COUNTRIES)])
    # orders are there before the worker starts: an inner join drops any record processed before
    # the global table was loaded, so all of them joined means the table was whole first
    produce(broker.bootstrap, "orders", orders(0, 60))
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: len(read_all(broker.bootstrap, "enriched", STREAM_PARTITIONS)) >= 60, errors,
                 "60 joined orders", timeout=60)
        assert app.metrics()['global_store_loaded_records{store="country-store"}'] == COUNTRIES
        view = app.store("country-store")
        assert len(view) == COUNTRIES and view["c7"] == {"name": "C7"}
        # kept current while running: an update, then a record that sees it
        produce(broker.bootstrap, "countries", [("c1", {"name": "Renamed"})])
        wait_for(lambda: app.store("country-store")["c1"] == {"name": "Renamed"}, errors, "the update",
                 timeout=30)
        produce(broker.bootstrap, "orders", [("late", {"n": 1000, "country": "c1"})])
        wait_for(lambda: len(read_all(broker.bootstrap, "enriched", STREAM_PARTITIONS)) >= 61, errors,
                 "the late order", timeout=30)
    assert not errors
    out = joined(broker)
    assert {k: v for k, v in out.items() if k != "late"} == {
        f"o{i}": {"n": i, "country": f"C{i % COUNTRIES}"} for i in range(60)}
    assert out["late"] == {"n": 1000, "country": "Renamed"}
    ends = end_offsets(broker.bootstrap, "countries", GLOBAL_PARTITIONS)
    assert checkpoint_on_disk(tmp_path) == ends  # every partition checkpointed at its end

    # while stopped: 4 more rows (one a tombstone); the restart reads only those
    produce(broker.bootstrap, "countries", [("c2", {"name": "Again"}), ("c3", None), ("c40", {"name": "New"}),
                                            ("c41", {"name": "Newer"})])
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: app.state()["ready"], errors, "the restarted worker", timeout=60)
        assert app.metrics()['global_store_loaded_records{store="country-store"}'] == 4
        view = app.store("country-store")
        assert len(view) == COUNTRIES - 1 + 2 and view["c2"] == {"name": "Again"} and view.get("c3") is None
    assert not errors
    assert sum(checkpoint_on_disk(tmp_path).values()) == COUNTRIES + 1 + 4


def test_a_missing_checkpoint_loads_the_whole_topic_again(tmp_path: Path, broker) -> None:
    create_topics(broker)
    produce(broker.bootstrap, "countries", [(f"c{i}", {"name": f"C{i}"}) for i in range(COUNTRIES)])
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: app.state()["state"] != "not_running" and len(app.store("country-store")) == COUNTRIES,
                 errors, "the loaded table", timeout=60)
    assert not errors
    # the store keeps its rows but loses its checkpoint (a directory restored from a backup, say)
    spec = make_app_spec()
    directory = StateDirectory(tmp_path, "gt-worker")
    store = directory.open_global_store(spec.name)
    store.clear()
    store.write({b"ghost": b'{"name": "stale"}'})  # a row with no checkpoint: not to be trusted
    store.close()
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: app.state()["ready"], errors, "the restarted worker", timeout=60)
        assert app.metrics()['global_store_loaded_records{store="country-store"}'] == COUNTRIES
        assert app.store("country-store").get("ghost") is None
        assert len(app.store("country-store")) == COUNTRIES
    assert not errors


def test_a_checkpoint_beyond_the_end_wipes_the_store_and_loads_it_again(tmp_path: Path, broker) -> None:
    create_topics(broker)
    produce(broker.bootstrap, "countries", [(f"c{i}", {"name": f"C{i}"}) for i in range(COUNTRIES)])
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: app.state()["state"] != "not_running" and len(app.store("country-store")) == COUNTRIES,
                 errors, "the loaded table", timeout=60)
    assert not errors
    # as if the topic had been deleted and re-created shorter: partition 1's checkpoint is past its end
    spec = make_app_spec()
    store = StateDirectory(tmp_path, "gt-worker").open_global_store(spec.name)
    store.write({b"ghost": b'{"name": "stale"}'}, {"countries/1": 10_000})
    store.close()
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: app.state()["ready"], errors, "the restarted worker", timeout=60)
        assert app.metrics()['global_store_loaded_records{store="country-store"}'] == COUNTRIES
        assert app.store("country-store").get("ghost") is None
        assert len(app.store("country-store")) == COUNTRIES
    assert not errors
    assert checkpoint_on_disk(tmp_path) == end_offsets(broker.bootstrap, "countries", GLOBAL_PARTITIONS)


def test_two_workers_of_one_group_both_hold_the_whole_table(tmp_path: Path, broker) -> None:
    create_topics(broker)
    produce(broker.bootstrap, "countries", [(f"c{i}", {"name": f"C{i}"}) for i in range(COUNTRIES)])
    first, second = make_app(broker, tmp_path / "w1"), make_app(broker, tmp_path / "w2")
    with app_in_thread(first) as errors1, app_in_thread(second) as errors2:
        def both_have_tasks() -> bool:
            assert not errors2, errors2
            return all(app.state()["ready"] and app.state()["tasks"] for app in (first, second))

        wait_for(both_have_tasks, errors1, "both workers with stream tasks", timeout=90)
        for app in (first, second):
            view = app.store("country-store")
            assert len(view) == COUNTRIES and view["c29"] == {"name": "C29"}
        produce(broker.bootstrap, "orders", orders(0, 40))
        wait_for(lambda: not errors2 and len(read_all(broker.bootstrap, "enriched", STREAM_PARTITIONS)) >= 40,
                 errors1, "40 joined orders", timeout=60)
    assert not errors1 and not errors2
    out = joined(broker)
    assert out == {f"o{i}": {"n": i, "country": f"C{i % COUNTRIES}"} for i in range(40)}


def test_a_bad_global_record_stops_the_worker_naming_topic_partition_and_offset(tmp_path: Path, broker) -> None:
    from streamlet.errors import RecordError

    create_topics(broker)
    produce(broker.bootstrap, "countries", [("c0", {"name": "C0"}), ("c0", b"{not json")])
    app = make_app(broker, tmp_path)
    with app_in_thread(app) as errors:
        wait_for(lambda: bool(errors), [], "the worker to stop", timeout=60)
    assert len(errors) == 1 and isinstance(errors[0], RecordError)
    err = errors[0]
    assert (err.topic, err.offset, err.stage) == ("countries", 1, "deserialize")
    assert f"topic 'countries' partition {err.partition} offset 1" in str(err)
    # the good record before it is applied and checkpointed; the bad one is where a restart begins
    assert checkpoint_on_disk(tmp_path)[err.partition] == 1


def test_the_initial_load_shows_progress_per_partition_and_polls_apply_updates(tmp_path: Path, broker) -> None:
    import io

    from rich.console import Console

    from streamlet.runtime.error_policy import ErrorPolicy
    from streamlet.runtime.global_state import GlobalState
    from streamlet.runtime.restore_progress import RestoreProgress

    create_topics(broker)
    produce(broker.bootstrap, "countries", [(f"c{i}", {"name": f"C{i}"}) for i in range(300)])
    app = make_app(broker, tmp_path)
    out = io.StringIO()
    progress = RestoreProgress(Console(file=out, force_terminal=True, width=120), enabled=True)
    state = GlobalState(app.topology, app.config, broker.bootstrap, StateDirectory(tmp_path, "gt-worker"),
                        ErrorPolicy("fail", "dead"), {"countries": GLOBAL_PARTITIONS}, progress=progress)
    try:
        assert state.bootstrap() == 300
        progress.close()
        text = out.getvalue()
        ends = end_offsets(broker.bootstrap, "countries", GLOBAL_PARTITIONS)
        for p, end in ends.items():
            assert f"restoring country-store (global) [{p}]" in text and f"{end}/{end}" in text
        cache = state.caches["country-store"]
        assert cache.get(b"c5") == {"name": "C5"}  # cached: a later update must replace it
        produce(broker.bootstrap, "countries", [("c5", {"name": "Five"}), ("c6", None)])
        applied = [0]

        def polled() -> bool:
            applied[0] += state.poll()
            return applied[0] >= 2

        wait_for(polled, [], "the updates", timeout=30)
        assert cache.get(b"c5") == {"name": "Five"} and cache.get(b"c6") is None
    finally:
        state.close()

