"""The determinism audit behind ``streamlet verify SCRIPT --store NAME`` (issue #16).

Several pods compute a store between them; can they disagree with what the
topology means — a "first value" that depends on which pod saw a record? The
audit replays the application's input topics from their start up to the
group's committed offsets, through the same topology in this process
(:class:`~streamlet.testing.TestDriver`: each input partition in offset
order, across partitions by timestamp, in scratch in-memory stores; it joins
no group and writes nothing to Kafka), and compares the store it builds with the live store of the running
workers, read through their HTTP side (``/stores/NAME`` of each worker: the
keys that worker holds). It reports every key that differs.

Run it while the input is quiet (the committed offsets reach the end of the
input): a worker's store may be ahead of its last commit. A topology that
repartitions before a by-offset aggregation (``latest``/``earliest`` by
offset after ``group_by``) can legitimately differ: the order records from
different input partitions reach one repartition partition is the live
run's, not the replay's.
"""

from __future__ import annotations

import heapq
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson

from streamlet.runtime.http_routes import plain_json
from streamlet.testing.driver import TestDriver

#: rows asked of each worker (its whole local store)
SCAN_LIMIT = 10_000_000


@dataclass
class VerifyReport:
    """What differs between the replayed store and the live one; ``ok`` when nothing does."""

    store: str
    replayed_keys: int = 0
    live_keys: int = 0
    records: int = 0
    only_replayed: list[tuple[Any, Any]] = field(default_factory=list)
    only_live: list[tuple[Any, Any]] = field(default_factory=list)
    different: list[tuple[Any, Any, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.only_replayed or self.only_live or self.different)

    def lines(self, show: int = 20) -> list[str]:
        head = (f"store {self.store!r}: {self.records} input records replayed, {self.replayed_keys} keys replayed, "
                f"{self.live_keys} keys live: " + ("no difference" if self.ok else
                                                   f"{len(self.different)} different, {len(self.only_live)} only "
                                                   f"live, {len(self.only_replayed)} only replayed"))
        out = [head]
        for key, replayed, live in self.different[:show]:
            out.append(f"  differs  {_text(key)}: replayed {_text(replayed)}, live {_text(live)}")
        for key, live in self.only_live[:show]:
            out.append(f"  only live  {_text(key)}: {_text(live)}")
        for key, replayed in self.only_replayed[:show]:
            out.append(f"  only replayed  {_text(key)}: {_text(replayed)}")
        return out


def _text(value: Any) -> str:
    return orjson.dumps(value, default=plain_json, option=orjson.OPT_NON_STR_KEYS).decode()


def _json(value: Any) -> Any:
    """The JSON form, as the HTTP side answers it: the two sides compare equal when their JSON does."""
    return orjson.loads(orjson.dumps(value, default=plain_json, option=orjson.OPT_NON_STR_KEYS))


def replay_store(app: Any, store: str, records: Iterable[tuple[str, int, Any, Any, int, Any]],
                 partitions: int) -> tuple[dict[str, tuple[Any, Any]], int]:
    """Run ``records`` — ``(topic, partition, key bytes, value bytes, timestamp, headers)``, each
    partition in offset order — through ``app``'s topology; ``{key json: (key, value)}`` of ``store``."""
    count = 0
    with TestDriver(app, partitions=partitions) as driver:  # its stores are in memory: the scratch state
        for topic, partition, key, value, ts, headers in records:
            driver.send_raw(topic, key, value, ts, headers, partition)
            count += 1
        rows = {_text(k): (_json(k), _json(v)) for k, v in driver.store(store).items()}
    return rows, count


def compare(store: str, replayed: dict[str, tuple[Any, Any]], live: dict[str, tuple[Any, Any]],
            records: int) -> VerifyReport:
    report = VerifyReport(store, len(replayed), len(live), records)
    for k, (key, value) in sorted(replayed.items()):
        if k not in live:
            report.only_replayed.append((key, value))
        elif live[k][1] != value:
            report.different.append((key, value, live[k][1]))
    report.only_live = [(key, value) for k, (key, value) in sorted(live.items()) if k not in replayed]
    return report


def live_store(servers: list[str], store: str, get: Callable[[str], Any] | None = None) -> dict[str, tuple[Any, Any]]:
    """``{key json: (key, value)}`` of ``store`` over the workers at ``servers`` (HOST:PORT each)."""
    if get is None:
        import httpx2 as httpx

        def get(url: str) -> Any:
            r = httpx.get(url, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"{url} answered {r.status_code}: {r.text.strip()}")
            return r.json()

    rows: dict[str, tuple[Any, Any]] = {}
    for server in servers:
        body = get(f"http://{server}/stores/{store}?limit={SCAN_LIMIT}")
        for row in body["rows"]:
            rows[_text(row["key"])] = (row["key"], row["value"])
    return rows


def read_inputs(app: Any, bootstrap: str) -> tuple[list[tuple[str, int, Any, Any, int, Any]], int]:
    """The application's input records from each partition's start up to the group's committed
    offset (the end when nothing is committed), each partition in offset order; and the partition
    count. Read with a throwaway consumer (no group commits)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    group = app.config.application_id
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-verify-{uuid.uuid4().hex[:8]}",
                       "enable.auto.commit": False, "enable.partition.eof": True})
    committed_by = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        topics = app.topology.external_source_topics()
        meta = reader.list_topics(timeout=10)
        counts = {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}
        tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in committed_by.committed(tps, timeout=10)}
        # up to the committed offset; to the end (the fetch's EOF: some brokers' ListOffsets is off) if none
        stops = {(tp.topic, tp.partition): committed.get((tp.topic, tp.partition), -1) for tp in tps}
        per_partition: dict[tuple[str, int], list[Any]] = {k: [] for k in stops}
        left = {k for k, stop in stops.items() if stop != 0}
        reader.assign([TopicPartition(t, p, -2) for t, p in sorted(left)])
        while left:
            for m in reader.consume(10_000, 1.0):
                key = (m.topic(), m.partition())
                if key not in left:
                    continue
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF and stops[key] < 0:
                        left.discard(key)
                    continue
                stop = stops[key]
                if stop < 0 or m.offset() < stop:
                    per_partition[key].append((m.topic(), m.partition(), m.key(), m.value(), m.timestamp()[1],
                                               m.headers()))
                if 0 <= stop <= m.offset() + 1:
                    left.discard(key)
        # each partition in offset order; across partitions by timestamp, as a task picks its next record
        records = list(heapq.merge(*(per_partition[k] for k in sorted(per_partition)), key=lambda r: r[4]))
        return records, max(counts.values(), default=1)
    finally:
        reader.close()
        committed_by.close()


def verify(app: Any, bootstrap: str, store: str, servers: list[str]) -> VerifyReport:
    """Replay ``app``'s inputs and compare store ``store`` with the live workers at ``servers``."""
    if store not in app.topology.stores:
        raise KeyError(f"no store named {store!r}; stores: {sorted(app.topology.stores)}")
    records, partitions = read_inputs(app, bootstrap)
    replayed, count = replay_store(app, store, records, partitions)
    return compare(store, replayed, live_store(servers, store), count)
