"""SPIKE (not merged): can streamlet run its own assignor through aiokafka's group membership, commit
with that membership, and commit transactions with librdkafka's producer using crafted group metadata?"""
from __future__ import annotations

import asyncio
import ctypes
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streamlet.broker.mock import find_librdkafka


def make_assignor(worker: str, seen: dict):
    from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

    class Spike(AbstractPartitionAssignor):
        name = "streamlet"
        version = 0

        @classmethod
        def metadata(cls, topics):
            return ConsumerProtocolMemberMetadata(0, sorted(topics), json.dumps({"worker": worker}).encode())

        @classmethod
        def assign(cls, cluster, members):
            time.sleep(float(__import__("os").environ.get("SPIKE_LEADER_DELAY", "0")))
            workers = {m: json.loads(md.user_data)["worker"] for m, md in members.items()}
            out = {}
            for m, md in members.items():
                parts = []
                for topic in md.subscription:
                    ps = sorted(cluster.partitions_for_topic(topic) or ())
                    if workers[m] == "B":  # the assignor decides: every partition to B
                        parts.append((topic, ps))
                standby = [w for w in workers.values() if w != workers[m]]
                out[m] = ConsumerProtocolMemberAssignment(0, parts, json.dumps({"standby_of": standby}).encode())
            return out

        @classmethod
        def on_assignment(cls, assignment):
            seen["assignment"] = ([(t, list(p)) for t, p in assignment.assignment], json.loads(assignment.user_data))

        @classmethod
        def on_generation_assigned(cls, generation):
            seen["generation"] = generation

    return Spike


def cgmd(group: str, generation: int, member: str) -> bytes:
    lib = ctypes.CDLL(find_librdkafka())
    lib.rd_kafka_consumer_group_metadata_new_with_genid.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_new_with_genid.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p]
    lib.rd_kafka_consumer_group_metadata_write.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_write.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    md = lib.rd_kafka_consumer_group_metadata_new_with_genid(group.encode(), generation, member.encode(), None)
    buf, size = ctypes.c_void_p(), ctypes.c_size_t()
    err = lib.rd_kafka_consumer_group_metadata_write(md, ctypes.byref(buf), ctypes.byref(size))
    assert not err
    out = ctypes.string_at(buf, size.value)
    lib.rd_kafka_consumer_group_metadata_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_consumer_group_metadata_destroy(md)
    return out


def committed(bootstrap, group, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)}
    finally:
        c.close()


def test_spike(broker, report):
    from aiokafka import AIOKafkaConsumer

    broker.create_topic("in", 4)
    bootstrap = broker.bootstrap
    group = "spike"
    seen_a, seen_b = {}, {}

    import threading

    def own_loop(name, seen, stop):
        async def run():
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                 partition_assignment_strategy=(make_assignor(name, seen),))
            await c.start(); c.subscribe(["in"])
            while not stop.is_set():
                await asyncio.sleep(0.1)
            await c.stop()
        asyncio.run(run())

    if __import__("os").environ.get("SPIKE_THREADS"):
        stop = threading.Event()
        ts = [threading.Thread(target=own_loop, args=(n, s_, stop)) for n, s_ in (("A", seen_a), ("B", seen_b))]
        [t.start() for t in ts]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and not (seen_a.get("assignment") and seen_b.get("assignment")
                and seen_a.get("generation") == seen_b.get("generation")):
            time.sleep(0.2)
        report(f"{broker.kind} threads: A={seen_a} B={seen_b} in {time.monotonic()-t0:.1f}s")
        stop.set(); [t.join() for t in ts]
        assert seen_a.get("assignment") and seen_a["generation"] == seen_b["generation"]
        return

    async def main():
        a = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             partition_assignment_strategy=(make_assignor("A", seen_a),))
        b = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             partition_assignment_strategy=(make_assignor("B", seen_b),))
        await a.start(); await b.start()
        a.subscribe(["in"]); b.subscribe(["in"])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            await asyncio.sleep(0.2)
            if (seen_a.get("assignment") and seen_b.get("assignment") and len(b.assignment()) == 4
                    and seen_a.get("generation") == seen_b.get("generation")):
                break
        report(f"{broker.kind}: A={seen_a} B={seen_b} in {time.monotonic()-t0:.1f}s")
        assert len(b.assignment()) == 4 and not a.assignment()
        assert seen_a["assignment"][1] == {"standby_of": ["B"]}
        b.pause(*b.assignment())
        from aiokafka.structs import TopicPartition as ATP
        await b.commit({ATP("in", 0): 5})
        gen, member = b._coordinator.generation, b._coordinator.member_id
        assert committed(bootstrap, group, "in", 4)[0] == 5
        # exactly-once: librdkafka's transactional producer with crafted group metadata
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "spike-tx"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("in", b"x", partition=1)
        p.send_offsets_to_transaction([TopicPartition("in", 1, 7)], cgmd(group, gen, member), 30)
        p.commit_transaction(30)
        assert committed(bootstrap, group, "in", 4)[1] == 7
        # fencing: a third member joins: the generation moves on; the old metadata is refused
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             partition_assignment_strategy=(make_assignor("C", {}),))
        await c.start(); c.subscribe(["in"])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and b._coordinator.generation == gen:
            await asyncio.sleep(0.2)
        report(f"{broker.kind}: generation {gen} -> {b._coordinator.generation}")
        p.begin_transaction()
        p.produce("in", b"y", partition=2)
        refused = None
        try:
            p.send_offsets_to_transaction([TopicPartition("in", 2, 9)], cgmd(group, gen, member), 30)
            p.commit_transaction(30)
        except KafkaException as exc:
            refused = exc.args[0]
            report(f"{broker.kind}: stale generation refused: {refused} fatal={refused.fatal()} abortable={refused.txn_requires_abort()}")
            if refused.txn_requires_abort():
                p.abort_transaction(30)
        after = committed(bootstrap, group, "in", 4)
        report(f"{broker.kind}: committed after stale try: {after}")
        await a.stop(); await b.stop(); await c.stop()
        assert refused is not None and after.get(2, -1001) != 9

    asyncio.run(main())
