"""Global tables (app.global_table) and stream–global-table joins through the TestDriver: Kafka Streams'
KStream#join(GlobalKTable, keySelector, joiner) / leftJoin semantics; records sent to a global table's
topic update it at once, whatever their partition."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import ConfigError, RecordError, TopologyError
from streamlet.testing import TestDriver
from streamlet.topology import codegen


@pytest.fixture(autouse=True, params=[True, False], ids=["generated", "closures"])
def generated(request: pytest.FixtureRequest):
    """Every test on the generated chain (the join inline) and on the compiled closures."""
    old = codegen.enabled
    codegen.enabled = request.param
    yield request.param
    codegen.enabled = old


def enrich(order: dict[str, Any], country: Any) -> dict[str, Any]:
    return {"amount": order["amount"], "country": None if country is None else country["name"]}


def by_country(key: Any, order: dict[str, Any]) -> Any:
    return order.get("country")


def _app(on_error: str = "fail", **join: Any) -> sl.App:
    app = sl.App("gt", on_error=on_error)
    countries = app.global_table("countries", name="country-store")
    orders = app.stream("orders")
    orders.join(countries, enrich, key_selector=by_country, **join).to("joined")
    orders.left_join(countries, enrich, key_selector=by_country).to("left-joined")
    return app


def test_inner_join_looks_the_row_up_by_the_selected_key_and_keeps_the_stream_key() -> None:
    with TestDriver(_app(), partitions=4) as d:
        d.send("countries", "fr", {"name": "France"}, partition=3)
        d.send("countries", "it", {"name": "Italy"}, partition=1)
        d.send("orders", "o1", {"amount": 5, "country": "fr"}, partition=0)
        d.send("orders", "o2", {"amount": 7, "country": "it"}, partition=2)
        d.send("orders", "o3", {"amount": 9, "country": "de"}, partition=1)  # no row: dropped
        assert d.read("joined") == [("o1", {"amount": 5, "country": "France"}),
                                    ("o2", {"amount": 7, "country": "Italy"})]


def test_left_join_calls_the_joiner_with_none_without_a_row_or_a_lookup_key() -> None:
    with TestDriver(_app(), partitions=2) as d:
        d.send("countries", "fr", {"name": "France"})
        d.send("orders", "o1", {"amount": 1, "country": "fr"})
        d.send("orders", "o2", {"amount": 2, "country": "de"})
        d.send("orders", "o3", {"amount": 3})  # the key selector gives None
        assert d.read("left-joined") == [("o1", {"amount": 1, "country": "France"}),
                                         ("o2", {"amount": 2, "country": None}),
                                         ("o3", {"amount": 3, "country": None})]
        assert d.read("joined") == [("o1", {"amount": 1, "country": "France"})]  # None lookup key: dropped


def test_a_stream_record_without_a_value_is_dropped_by_both_joins() -> None:
    with TestDriver(_app()) as d:
        d.send("countries", "fr", {"name": "France"})
        d.send("orders", "o1", None)
        assert d.read("joined") == [] and d.read("left-joined") == []


def test_a_tombstone_in_the_global_table_deletes_the_row_for_later_records_only() -> None:
    with TestDriver(_app()) as d:
        d.send("countries", "fr", {"name": "France"})
        d.send("orders", "o1", {"amount": 1, "country": "fr"})
        d.send("countries", "fr", None)
        d.send("countries", "xx", None)  # a tombstone for a key never held: nothing
        d.send("orders", "o2", {"amount": 2, "country": "fr"})
        assert d.read("joined") == [("o1", {"amount": 1, "country": "France"})]  # later changes emit nothing
        assert d.read("left-joined") == [("o1", {"amount": 1, "country": "France"}),
                                         ("o2", {"amount": 2, "country": None})]
        assert dict(d.store("country-store").items()) == {}


def test_an_update_of_the_global_table_applies_to_the_next_record() -> None:
    with TestDriver(_app(), partitions=3) as d:
        d.send("countries", "fr", {"name": "France"}, partition=0)
        d.send("orders", "o1", {"amount": 1, "country": "fr"})
        d.send("countries", "fr", {"name": "République française"}, partition=0)
        d.send("orders", "o2", {"amount": 2, "country": "fr"})
        assert [v["country"] for _, v in d.read("joined")] == ["France", "République française"]


def test_the_key_selector_may_use_the_key_and_the_default_is_the_stream_key() -> None:
    app = sl.App("gt-keys")
    countries = app.global_table("countries")
    orders = app.stream("orders")
    orders.join(countries, enrich, key_selector=lambda k, v: k.split(":")[0]).to("by-prefix")
    orders.join(countries, enrich).to("by-key")
    with TestDriver(app) as d:
        d.send("countries", "fr", {"name": "France"})
        d.send("orders", "fr:1", {"amount": 1})
        d.send("orders", "fr", {"amount": 2})
        assert d.read("by-prefix") == [("fr:1", {"amount": 1, "country": "France"}),
                                       ("fr", {"amount": 2, "country": "France"})]
        assert d.read("by-key") == [("fr", {"amount": 2, "country": "France"})]


def test_a_global_join_after_a_key_change_does_not_repartition() -> None:
    app = sl.App("gt-rekey")
    countries = app.global_table("countries")
    (app.stream("orders").select_key(lambda k, v: v["id"])
     .join(countries, enrich, key_selector=by_country).to("joined"))
    assert app.topology.internal_topics == {}
    with TestDriver(app, partitions=2) as d:
        d.send("countries", "fr", {"name": "France"}, partition=1)
        d.send("orders", "k", {"id": "o9", "amount": 4, "country": "fr"}, partition=0)
        assert d.read("joined") == [("o9", {"amount": 4, "country": "France"})]


def test_the_global_store_holds_every_partition_and_is_readable_as_a_store() -> None:
    with TestDriver(_app(), partitions=4) as d:
        for i in range(12):
            d.send("countries", f"c{i}", {"name": f"C{i}"}, partition=i % 4)
        view = d.store("country-store")
        assert len(view) == 12 and view["c7"] == {"name": "C7"}


def test_a_record_without_a_key_follows_on_error_and_names_topic_partition_offset() -> None:
    with TestDriver(_app(on_error="fail"), partitions=2) as d:
        d.send("countries", "fr", {"name": "France"}, partition=1)
        with pytest.raises(RecordError, match=r"topic 'countries' partition 1 offset 1.*no key"):
            d.send_raw("countries", None, b'{"name": "Nowhere"}', partition=1)
    with TestDriver(_app(on_error="skip")) as d:
        d.send_raw("countries", None, b'{"name": "Nowhere"}')
        d.send("countries", "fr", {"name": "France"})
        assert dict(d.store("country-store").items()) == {"fr": {"name": "France"}}


def test_a_record_its_serde_cannot_read_is_dead_lettered_with_its_origin() -> None:
    with TestDriver(_app(on_error="dead_letter")) as d:
        d.send_raw("countries", b"fr", b"{not json")
        d.send("countries", "it", {"name": "Italy"})
        dead = d.read_records("gt-dead-letter")
        assert [r.key for r in dead] == [b"fr"]
        headers = dict(dead[0].headers)
        assert headers["streamlet.topic"] == b"countries" and headers["streamlet.offset"] == b"0"
        assert headers["streamlet.stage"] == b"deserialize"
        assert dict(d.store("country-store").items()) == {"it": {"name": "Italy"}}


def test_declaring_errors() -> None:
    app = sl.App("gt-errors")
    countries = app.global_table("countries")
    with pytest.raises(ConfigError, match="already"):
        app.stream("countries")
    with pytest.raises(ConfigError, match="already"):
        app.global_table("countries", name="other")
    with pytest.raises(TopologyError, match="two state stores"):
        app.table("t", name="countries")
    with pytest.raises(TypeError, match="key_selector"):
        app.stream("orders").join(app.table("users"), enrich, key_selector=by_country)
    with pytest.raises(TypeError, match="key_selector"):
        app.stream("more").join(countries, enrich, key_selector="country")
    other = sl.App("gt-other").global_table("countries")
    with pytest.raises(TopologyError, match="same App"):
        app.stream("again").join(other, enrich)


def test_the_generated_chain_looks_the_row_up_inline(generated: bool) -> None:
    with TestDriver(_app()) as d:
        fn = d.tasks.routes["orders"][0]
        assert ("global join country-store" in getattr(fn, "__streamlet_source__", "")) == generated


def test_describe_lists_global_stores() -> None:
    text = _app().describe()
    assert "Global Stores" in text
    assert "(topic: countries, key: string, value: json) --> global-table-country-store" in text
    assert "(global store: country-store)" in text
    assert "global store: country-store" in _app().describe("mermaid")
