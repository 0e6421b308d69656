"""The topology the StatefulSet runs (mounted from the streamlet-topology ConfigMap): the first name
seen for each user, kept in the queryable store "first-names" and written to the topic "first-names".

    user-events (key: user id, value: {"name": ...}) ─ group by key ─ earliest by offset ─> first-names

Put your own script here (kustomization.yaml makes the ConfigMap from this file). Settings come from
the environment (STREAMLET_BROKERS, ...), so the same script runs on a laptop:
`streamlet run deploy/k8s/topology.py` uses the embedded broker. Topics to create first:
`streamlet topics deploy/k8s/topology.py`. Ask a running worker: `streamlet query first-names USER`.
"""

from __future__ import annotations

import streamlet as sl

app = sl.App("first-names")

first_names = (app.stream("user-events")
               .group_by_key()
               .aggregate(first_name=sl.agg.earliest_by_offset("name"), name="first-names"))
first_names.to_stream().to("first-names")

if __name__ == "__main__":
    app.run()
