"""Case ``restore``: changelog records per second restored into RocksDB (DESIGN §6).

Data: a changelog topic of ``records`` records over ``keys`` keys in
``partitions`` partitions (partitioned by key), each value a stored
aggregation row as streamlet writes it (msgpack ``[offset, [count, [off,
first], [off, last]], seq]``, ~30 bytes), the keys those of ``stateless``.
It is not compacted (the embedded broker does not compact): every record is
read and applied, as after a long run between compactions.

Sides, each in a fresh process with an empty state directory:

* ``raw-consume`` (the contract's baseline): the same topic read by a plain
  consumer (``assign`` of every partition, ``consume(10000)``, nothing
  done with the records): the practical limit of reading it.
* ``raw restore``: a hand-written restore — the same reading, plus one
  rocksdict ``WriteBatch`` per consumed batch into one database (a
  reference: what RocksDB adds to reading), the latest value per key of
  the batch only, as streamlet does.
* ``streamlet``: streamlet's real path — a store per partition opened by
  ``StateDirectory`` (RocksDB, the runtime's options) and
  ``streamlet.state.restore_store`` with a consumer made from
  ``restore_consumer_config``, partition after partition, as the
  ``StateManager`` does when a worker starts.

Timing: from the first request to the last record applied (streamlet: every
partition's restore, checkpoints written). Target: 300,000 records/s.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, best, measure, summary_rows
from benchmarks.harness import BenchError, open_broker, check_fits, err_console, load, side_entry, tune_gc

BASELINE = "raw-consume"
TOPIC = "bench-app-stats-changelog"
STORE = "stats"
TARGET_RPS = 300_000
SIDES = {"raw": "raw-consume", "raw_write": "raw restore (consume + WriteBatch)", "streamlet": "streamlet"}


def make_changelog(records: int, keys: int, distinct: list[int], seed: int = 11) -> Iterator[tuple[bytes, bytes]]:
    """The records; ``distinct`` ends up holding the number of distinct keys."""
    import msgpack

    pack = msgpack.Packer(use_bin_type=True).pack
    rnd = random.Random(seed)
    counts = [0] * keys
    key_bytes = [f"user-{i:05d}".encode() for i in range(keys)]
    for offset in range(records):
        k = rnd.randrange(keys)
        counts[k] += 1
        amount = rnd.randrange(1000)
        yield key_bytes[k], pack([offset, [counts[k], [offset - 1, 500], [offset, amount]], 0])
    distinct.append(sum(1 for c in counts if c))


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, 10 + 30, "changelog", opts.broker)
    with open_broker({TOPIC: opts.partitions}, opts.broker) as broker:
        distinct: list[int] = []
        load_s = load(broker.bootstrap, TOPIC, make_changelog(opts.records, opts.keys, distinct), opts.records)
        broker.check_complete(TOPIC, opts.records)
        err_console.print(f"loaded {opts.records:,} changelog records in {load_s:.1f} s")

        def params(side: str, r: int) -> dict[str, Any]:
            return {"bootstrap": broker.bootstrap, "topic": TOPIC, "records": opts.records,
                    "partitions": opts.partitions, "group": f"bench-{side}-{r}", "config": opts.client_config}

        def check(side: str, r: int, res: Any) -> None:
            if res.extra.get("keys") is not None and res.extra["keys"] != distinct[0]:
                raise BenchError(f"{side}: {res.extra['keys']} keys restored, expected {distinct[0]}")

        runs = measure("restore", SIDES, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    raw, sl = b["raw"], b["streamlet"]
    rows, median_ratio = summary_rows(runs, SIDES, opts.records, "streamlet", "raw")
    details = [
        ("records / partitions / keys", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("changelog load", f"{load_s:.1f} s"),
        ("target", f"{TARGET_RPS:,} records/s: streamlet at {sl.rps / TARGET_RPS:.2f}× the target"),
        ("raw restore (consume + WriteBatch)", f"{b['raw_write'].rps:,.0f} rec/s "
                                               f"(streamlet: {sl.rps / b['raw_write'].rps:.2f}× it)"),
        *rows,
    ]
    return CaseResult(
        case="restore", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "baseline_seconds": round(raw.seconds, 3),
               "raw_restore_rps": round(b["raw_write"].rps, 1), "target_rps": TARGET_RPS,
               "repeat": opts.repeat, "median_ratio": round(median_ratio, 3),
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


# -- the sides --------------------------------------------------------------------------
def _raw(p: dict[str, Any], write: bool) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    from streamlet.state.restore import restore_consumer_config

    consumer = Consumer(restore_consumer_config(p["bootstrap"], **{"group.id": p["group"],
                                                                   "enable.partition.eof": False}))
    state_dir = tempfile.mkdtemp(prefix="bench-restore-")
    db = None
    if write:
        from rocksdict import Rdict, WriteBatch

        from streamlet.state.rocksdb import _options

        db = Rdict(state_dir + "/db", _options())
    tune_gc()
    window = Window()
    window.start()
    topic, remaining = p["topic"], p["records"]
    consumer.assign([TopicPartition(topic, i, 0) for i in range(p["partitions"])])
    consume = consumer.consume
    while remaining > 0:
        msgs = consume(10_000, 0.1)
        if not msgs:
            continue
        if db is not None:
            batch = WriteBatch(raw_mode=True)
            put = batch.put
            for kb, vb in {m.key(): m.value() for m in msgs}.items():  # the latest value per key
                put(kb, vb)
            db.write(batch)
        remaining -= len(msgs)
    window.stop()
    consumer.close()
    out = window.result(p["records"])
    if db is not None:
        out["keys"] = sum(1 for _ in db.keys())
        db.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    return out


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: read the topic, nothing else."""
    return _raw(p, write=False)


@side_entry
def side_raw_write(p: dict[str, Any]) -> dict[str, Any]:
    """A hand-written restore: read the topic, one WriteBatch per batch."""
    return _raw(p, write=True)


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """streamlet's restore path: a RocksDB store per partition, ``restore_store`` for each."""
    from confluent_kafka import Consumer

    from streamlet.state import StateDirectory, restore_store
    from streamlet.state.restore import restore_consumer_config

    state_dir = tempfile.mkdtemp(prefix="bench-restore-")
    directory = StateDirectory(state_dir, "bench-app")
    stores = [directory.open_store(i, STORE) for i in range(p["partitions"])]
    consumer = Consumer(restore_consumer_config(p["bootstrap"], **{"group.id": p["group"]}))
    tune_gc()
    window = Window()
    window.start()
    count = 0
    for i, store in enumerate(stores):
        count += restore_store(store, consumer, p["topic"], i)
    window.stop()
    consumer.close()
    keys = 0
    for store in stores:
        keys += sum(1 for _ in store.items())
        store.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    if count != p["records"]:
        raise RuntimeError(f"restored {count} records, expected {p['records']}")
    out = window.result(count)
    out["keys"] = keys
    return out
