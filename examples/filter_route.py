"""Filter and route: valid payments go to `payments-ok`, large ones also to `payments-review`,
malformed ones are dropped with a count. Run with `streamlet run examples/filter_route.py`.
"""

import streamlet as sl

app = sl.App("filter-route", on_error="skip")
payments = app.stream("payments")

valid = payments.filter(lambda k, v: isinstance(v, dict) and v.get("amount", 0) > 0)
valid.map_values(lambda v: {**v, "amount_cents": int(round(v["amount"] * 100))}).to("payments-ok")
valid.filter(lambda k, v: v["amount"] >= 1_000).to("payments-review")

if __name__ == "__main__":
    app.run()
