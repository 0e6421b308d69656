"""Filter and route a stream of payments.

    payments ─┬─ valid ─────────────> payments-ok        (amount_cents added)
              │    └─ amount ≥ 1000 ─> payments-review
              └─ invalid ───────────> payments-rejected  (with the reason)
    unreadable records (not JSON) ──> payments-dead-letter (error, topic, partition, offset in headers)

Run it:

    streamlet run examples/filter_route.py                                   # embedded broker
    STREAMLET_BROKERS=localhost:9092 streamlet run examples/filter_route.py  # real Kafka

Topics: `streamlet topics examples/filter_route.py`; diagram: `streamlet describe
examples/filter_route.py --format mermaid`.
"""

from __future__ import annotations

from typing import Any

import streamlet as sl

REVIEW_FROM = 1_000  # payments of at least this amount also go to payments-review

app = sl.App("filter-route", on_error="dead_letter", dead_letter_topic="payments-dead-letter")
payments = app.stream("payments")  # string keys, JSON values


def problem(payment: Any) -> str | None:
    """Why a payment is invalid, or None if it is fine."""
    if not isinstance(payment, dict):
        return "not a JSON object"
    amount = payment.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return "amount is missing or not a number"
    if amount <= 0:
        return "amount is not positive"
    return None


valid = payments.filter(lambda k, v: problem(v) is None)
valid.map_values(lambda v: {**v, "amount_cents": round(v["amount"] * 100)}).to("payments-ok")
valid.filter(lambda k, v: v["amount"] >= REVIEW_FROM).to("payments-review")

(payments.filter_not(lambda k, v: problem(v) is None)
         .map_values(lambda v: {"payment": v, "reason": problem(v)})
         .to("payments-rejected"))

if __name__ == "__main__":
    app.run()
