"""Seeded record sequences for the differential test, and the streamlet side's run.

Every sequence repeats keys (a few keys, many records), has tombstones and out-of-order timestamps
(a record may be stamped up to 500 ms before the one before it); some also have records with no key.
"""

from __future__ import annotations

import random
from typing import Any

import streamlet as sl
from diff_topologies import TOPOLOGIES, build
from streamlet.testing.kstreams_diff import OutRecord

USERS = ["u1", "u2", "u3", None]
CITIES = ["Paris", "Rome", "Oslo"]
PLANS = ["gold", "free", "pro"]


def stream_value(rng: random.Random) -> dict[str, Any]:
    return {"user": rng.choice(USERS), "amount": rng.randint(0, 99), "tag": rng.choice("abc")}


def table_value(rng: random.Random) -> dict[str, Any]:
    return {"city": rng.choice(CITIES), "age": rng.randint(10, 60)}


def account_value(rng: random.Random) -> dict[str, Any]:
    return {"plan": rng.choice(PLANS), "credits": rng.randint(0, 500)}


def country_value(rng: random.Random) -> dict[str, Any]:
    return {"name": rng.choice(CITIES), "vat": rng.randint(0, 25)}


def membership_value(rng: random.Random) -> dict[str, Any]:
    """A row of table 'memberships': ``user`` is a key of table 'users' (a foreign key), or None."""
    return {"user": rng.choice(["k0", "k1", "k2", "k3", "k4", "k5", None]), "level": rng.randint(1, 5)}


#: table topic → its values (the same keys k0..k5 as every topic, so the two tables of a table–table
#: join hold the same keys: rows match often, and each side inserts, updates and deletes them)
TABLE_VALUES = {"users": table_value, "accounts": account_value, "countries": country_value,
                "memberships": membership_value}


def records(topology: str, seed: int, n: int = 80, null_keys: bool = False) -> list[dict[str, Any]]:
    """``n`` records over the inputs of ``topology``: keys k0..k5, ~15% tombstones, out-of-order times."""
    rng = random.Random(seed)
    inputs = TOPOLOGIES[topology][2]
    out = []
    for i in range(n):
        topic = rng.choice(inputs)
        key: str | None = f"k{rng.randrange(6)}"
        if null_keys and topic not in TABLE_VALUES and rng.random() < 0.1:
            key = None  # a table record needs a key (a bad record, DESIGN §5): streams only
        value = None if rng.random() < 0.15 else TABLE_VALUES.get(topic, stream_value)(rng)
        timestamp = 1000 + 100 * i - rng.choice([0, 0, 0, 0, 150, 250, 500])
        out.append({"topic": topic, "key": key, "value": value, "timestamp": timestamp})
    return out


def run_streamlet(topology: str, recs: list[dict[str, Any]]) -> list[OutRecord]:
    """Every output record of ``topology`` on streamlet's TestDriver, topic by topic."""
    with sl.testing.TestDriver(build(topology)) as d:
        for r in recs:
            d.send(r["topic"], key=r["key"], value=r["value"], timestamp=r["timestamp"])
        return [OutRecord(topic, rec.key, rec.value, rec.timestamp)
                for topic in TOPOLOGIES[topology][1] for rec in d.read_records(topic)]


def by_topic(out: list[OutRecord], timestamps: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Output records per topic, in order: ``(key, value)`` or ``(key, value, timestamp)``."""
    topics: dict[str, list[tuple[Any, ...]]] = {}
    for r in out:
        row = (r.key, r.value, r.timestamp) if timestamps else (r.key, r.value)
        topics.setdefault(r.topic, []).append(row)
    return topics


def first_difference(ours: dict[str, list], theirs: dict[str, list]) -> str:
    """A readable account of where streamlet's outputs first leave Kafka Streams'."""
    for topic in sorted(set(ours) | set(theirs)):
        a, b = ours.get(topic, []), theirs.get(topic, [])
        if a == b:
            continue
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return (f"topic {topic!r}: streamlet wrote {len(a)} records, Kafka Streams {len(b)}; "
                f"first difference at #{i}: streamlet {a[i] if i < len(a) else '(none)'} vs Kafka Streams "
                f"{b[i] if i < len(b) else '(none)'}; the records before it: {b[max(0, i - 3):i]}")
    return "no difference"
