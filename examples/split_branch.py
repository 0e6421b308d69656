"""Split a stream of sensor readings by kind, then merge the alarming ones back together.

    readings ─ split ─┬─ temperature ─> map_values (°F added) ─> temperatures
                      ├─ humidity ────────────────────────────> humidities
                      └─ anything else ───────────────────────> unknown-readings
    hot temperatures + very humid readings ─ merge ───────────> alerts

A record goes to the first branch whose predicate matches (Kafka Streams'
`split()` / `BranchedKStream`). Run it with `streamlet run examples/split_branch.py`.
"""

import streamlet as sl

HOT_C = 35          # °C
HUMID_PCT = 90      # %

app = sl.App("split-branch")
readings = app.stream("readings")  # key: sensor id, value: {"kind": ..., "value": ...}

branches = (readings.split(name="readings-")
                    .branch(lambda k, v: v["kind"] == "temperature", name="temperature")
                    .branch(lambda k, v: v["kind"] == "humidity", name="humidity")
                    .default_branch(name="other"))

temperatures = branches["readings-temperature"].map_values(
    lambda v: {**v, "fahrenheit": round(v["value"] * 9 / 5 + 32, 1)})
temperatures.to("temperatures")
branches["readings-humidity"].to("humidities")
branches["readings-other"].to("unknown-readings")

hot = temperatures.filter(lambda k, v: v["value"] >= HOT_C)
humid = branches["readings-humidity"].filter(lambda k, v: v["value"] >= HUMID_PCT)
hot.merge(humid).map_values(lambda v: {**v, "alert": True}).to("alerts")

if __name__ == "__main__":
    app.run()
