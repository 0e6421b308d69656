"""Enrich orders with their customer, and count each customer's orders per minute — once per minute.

    orders (key: order id) ──select_key(customer)──> join customers ──> orders-enriched
                                     └─ group by customer ─ 1-minute tumbling windows, emit final
                                                                    ──> orders-per-customer-minute

`customers` is a table (the latest row per customer id). Order records carry the
customer id and their event time in `ts` (ms); a minute is counted once it has
closed: stream time past its end + 10 s of grace for orders that arrive late.

Run it:

    streamlet run examples/orders_per_customer.py                                   # embedded broker
    STREAMLET_BROKERS=localhost:9092 streamlet run examples/orders_per_customer.py  # real Kafka

Each output of `orders-per-customer-minute` is, for example,
`key "c42"`, value `{"customer": "c42", "name": "Ada", "minute": 1733310000000, "orders": 3}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlet as sl

app = sl.App("orders-per-customer")
customers = app.table("customers")                       # {"name": ..., "tier": ...}
orders = app.stream("orders", timestamp="ts")            # {"customer": ..., "amount": ..., "ts": ...}

by_customer = orders.select_key(lambda order_id, order: order["customer"])


def enrich(order: dict[str, Any], customer: dict[str, Any] | None) -> dict[str, Any]:
    return {**order, "name": None if customer is None else customer["name"],
            "tier": None if customer is None else customer["tier"]}


enriched = by_customer.left_join(customers, enrich)
enriched.to("orders-enriched")

per_minute = (enriched.group_by_key()
              .windowed_by(sl.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10)))
              .emit_final()
              # the dict form: a column may be called "name" (name= names the store)
              .aggregate({"orders": sl.agg.count(), "name": sl.agg.latest_by_offset("name")},
                         name="orders-per-customer-minute"))

(per_minute.to_stream()
           .map(lambda w, row: (w.key, {"customer": w.key, "name": row["name"], "minute": w.start,
                                        "orders": row["orders"]}))
           .to("orders-per-customer-minute"))

if __name__ == "__main__":
    app.run()
