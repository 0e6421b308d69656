"""Split a stream of sensor readings by kind: temperatures, humidities, and the rest.
Run with `streamlet run examples/split_branch.py`.
"""

import streamlet as sl

app = sl.App("split-branch")
readings = app.stream("readings")

branches = (readings.split(name="readings-")
                    .branch(lambda k, v: v["kind"] == "temperature", name="temperature")
                    .branch(lambda k, v: v["kind"] == "humidity", name="humidity")
                    .default_branch(name="other"))
(branches["readings-temperature"]
    .map_values(lambda v: {**v, "fahrenheit": v["value"] * 9 / 5 + 32})
    .to("temperatures"))
branches["readings-humidity"].to("humidities")
branches["readings-other"].to("unknown-readings")

if __name__ == "__main__":
    app.run()
