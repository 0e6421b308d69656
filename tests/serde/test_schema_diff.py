"""schema_diff: which differences between the producer's schema and the registry's a generic value may
follow (field order, names, added nullable fields) and which block (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.serde.schema_diff import diff_schemas


def record(name: str, fields: list[Any], namespace: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
    if namespace:
        out["namespace"] = namespace
    return out


ID = {"name": "id", "type": "string"}
AMOUNT = {"name": "amount", "type": "double"}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
ORDER = record("Order", [ID, AMOUNT], "shop")


def test_equal_schemas_are_identical_even_with_docs_and_another_layout() -> None:
    other = record("Order", [{**ID, "doc": "the order id"}, AMOUNT], "shop")
    d = diff_schemas(ORDER, other)
    assert d.identical and d.followable and d.describe() == "no difference"


def test_field_order_names_and_added_nullable_fields_are_harmless() -> None:
    theirs = record("ORDER_V2", [AMOUNT, NOTE, ID], "ksql")
    d = diff_schemas(ORDER, theirs)
    assert d.blocking == []
    assert d.harmless == ["record name shop.Order -> ksql.ORDER_V2",
                          "field order (id, amount) -> (amount, note, id)", "added nullable field note"]
    assert d.followable and not d.identical


@pytest.mark.parametrize("theirs,expected", [
    (record("Order", [ID, {"name": "amount", "type": "float"}], "shop"), "type double -> float at amount"),
    (record("Order", [ID], "shop"), "field amount missing in the registry's schema"),
    (record("Order", [ID, AMOUNT, {"name": "qty", "type": "int"}], "shop"), "added required field qty"),
    (record("Order", [ID, AMOUNT, {"name": "qty", "type": "int", "default": 0}], "shop"),
     "added required field qty"),
    (record("Order", [ID, {"name": "amount", "type": ["null", "double"]}], "shop"),
     "type double -> [null, double] at amount"),
])
def test_type_changes_and_missing_fields_block(theirs: Any, expected: str) -> None:
    d = diff_schemas(ORDER, theirs)
    assert not d.followable
    assert any(b.startswith(expected) for b in d.blocking), d.blocking


def test_logical_type_changes_block() -> None:
    ours = record("E", [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                                                   "scale": 2}}])
    theirs = record("E", [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                          {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                                                     "scale": 3}}])
    d = diff_schemas(ours, theirs)
    assert d.blocking == ["logical type timestamp-millis -> timestamp-micros at at", "scale 2 -> 3 at price"]
    plain = record("E", [{"name": "at", "type": "long"}, {"name": "price", "type": "bytes"}])
    assert "logical type timestamp-millis -> None at at" in diff_schemas(ours, plain).blocking


def test_nested_records_enums_arrays_and_unions() -> None:
    item = record("Item", [{"name": "sku", "type": "string"}])
    color = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
    ours = record("Cart", [{"name": "items", "type": {"type": "array", "items": item}},
                           {"name": "color", "type": color},
                           {"name": "gift", "type": ["null", "Item"]}])
    renamed = record("Cart", [{"name": "items", "type": {"type": "array", "items": record("LineItem", [
        {"name": "sku", "type": "string"}])}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["GREEN", "RED"]}},
        {"name": "gift", "type": ["LineItem", "null"]}])
    d = diff_schemas(ours, renamed)
    assert d.blocking == [] and "record name Item -> LineItem at items[]" in d.harmless
    assert "enum symbol order at color" in d.harmless and "union branch order at gift" in d.harmless
    changed = record("Cart", [{"name": "items", "type": {"type": "array", "items": record("Item", [
        {"name": "sku", "type": "long"}])}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}},
        {"name": "gift", "type": ["null", "string"]}])
    d = diff_schemas(ours, changed)
    assert d.blocking == ["type string -> long at items[].sku", "enum symbols ['RED', 'GREEN'] -> ['RED', 'BLUE'] "
                          "at color", "union [null, Item] -> [null, string] at gift"]


def test_recursive_types_are_compared_once() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}
    node2 = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}, {"name": "v", "type": "int"}]}
    d = diff_schemas(node, node2)
    assert d.blocking == [] and d.harmless == ["field order (v, next) -> (next, v)"]
