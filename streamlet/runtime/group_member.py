"""This worker's membership of the application's consumer group when streamlet assigns the tasks
(``task_assignor="streamlet"``): the group protocol through aiokafka, in a thread of its own.

confluent-kafka runs librdkafka's assignors only; aiokafka's assignors are Python classes. So the
membership — join, sync, heartbeats, the generation, static membership, offset commits — goes through
aiokafka's group coordinator, with streamlet's assignor (:mod:`streamlet.runtime.streamlet_assignor`)
as the group's only protocol. The membership consumer reads no records: its assignment lists no
partitions, the tasks ride in the assignment's user data. Records are read by the worker's own
confluent-kafka consumer (:mod:`streamlet.runtime.assigned_consumer`).

Liveness is the record loop's, as with librdkafka's ``max.poll.interval.ms``: the thread keeps the
member in the group only while the loop has polled within that interval.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamlet.errors import ConfigError, StreamletError

log = logging.getLogger("streamlet.runtime")

#: librdkafka settings the membership takes over; others of the ``security.`` / ``sasl.`` kind are refused
_UNSUPPORTED = ("security.protocol", "sasl.", "ssl.")


def _librdkafka() -> ctypes.CDLL:
    from streamlet.broker.mock import find_librdkafka

    lib = ctypes.CDLL(find_librdkafka())
    lib.rd_kafka_consumer_group_metadata_new_with_genid.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_new_with_genid.argtypes = [
        ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p]
    lib.rd_kafka_consumer_group_metadata_write.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_write.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    lib.rd_kafka_consumer_group_metadata_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mem_free.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.rd_kafka_error_destroy.argtypes = [ctypes.c_void_p]
    return lib


def group_metadata(group: str, generation: int, member: str, instance: str | None) -> bytes:
    """librdkafka's serialized consumer group metadata for these values (what
    ``Consumer.consumer_group_metadata()`` returns), built with its public
    ``rd_kafka_consumer_group_metadata_new_with_genid``: the transactional producer's
    ``send_offsets_to_transaction`` takes it, and the broker checks the generation."""
    lib = _librdkafka()
    md = lib.rd_kafka_consumer_group_metadata_new_with_genid(
        group.encode(), generation, member.encode(), instance.encode() if instance else None)
    buf, size = ctypes.c_void_p(), ctypes.c_size_t()
    try:
        err = lib.rd_kafka_consumer_group_metadata_write(md, ctypes.byref(buf), ctypes.byref(size))
        if err:
            lib.rd_kafka_error_destroy(err)
            raise StreamletError("librdkafka could not serialize the consumer group metadata")
        out = ctypes.string_at(buf, size.value)
        lib.rd_kafka_mem_free(None, buf)
        return out
    finally:
        lib.rd_kafka_consumer_group_metadata_destroy(md)


def _as_kafka_error(exc: BaseException | None) -> KafkaError:
    """An aiokafka commit failure as the KafkaError librdkafka would give: a refusal because of a
    rebalance (or of a member the group dropped) is ``REBALANCE_IN_PROGRESS``, the rest ``UNKNOWN``."""
    from aiokafka.errors import CommitFailedError

    if isinstance(exc, CommitFailedError):
        return KafkaError(KafkaError.REBALANCE_IN_PROGRESS, f"commit refused: {exc}")
    return KafkaError(KafkaError.UNKNOWN, f"commit failed: {exc}")


class GroupMember:
    """One member of the application's group, run by aiokafka in a daemon thread.

    ``metadata()`` gives the bytes this worker sends with each join; ``assign(members)`` runs on the
    leader (``{member_id: metadata bytes}`` → ``{member_id: assignment bytes}``); ``on_assignment(
    generation, member_id, data)`` is called in the member's thread after each sync, ``on_lost()``
    when the group dropped this member (session timeout, poll interval).
    """

    def __init__(self, *, group: str, bootstrap: str, topic: str, instance_id: str | None,
                 client_config: dict[str, Any], metadata: Callable[[], bytes],
                 assign: Callable[[dict[str, bytes]], dict[str, bytes]],
                 on_assignment: Callable[[int, str, bytes], None], on_lost: Callable[[], None] = lambda: None,
                 leader_delay_s: float = 0.0) -> None:
        bad = sorted(k for k in client_config if k.startswith(_UNSUPPORTED)
                     and not (k == "security.protocol" and str(client_config[k]).upper() == "PLAINTEXT"))
        if bad:
            raise ConfigError(f"task_assignor='streamlet' does not support the client settings {bad} yet; "
                              "use task_assignor='group' (the default) with TLS or SASL")
        self.group, self.instance_id = group, instance_id
        self._bootstrap, self._topic = bootstrap, topic
        self._session_ms = int(client_config.get("session.timeout.ms", 45_000))
        self._heartbeat_ms = int(client_config.get("heartbeat.interval.ms", 3_000))
        self._max_poll_s = int(client_config.get("max.poll.interval.ms", 300_000)) / 1000
        self._metadata, self._assign, self._on_assignment = metadata, assign, on_assignment
        self._on_lost = on_lost
        self._leader_delay_s = leader_delay_s
        self.generation, self.member_id = -1, ""
        self._polled = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Any = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="streamlet-group", daemon=True)

    # -- the record loop's side --------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise StreamletError(f"could not join group {self.group!r} within {timeout_s:.0f} s")
        if self._failure is not None:
            raise self._failure

    def polled(self) -> None:
        """The record loop polled: the member stays in the group."""
        self._polled = time.monotonic()

    def group_metadata(self) -> bytes:
        return group_metadata(self.group, self.generation, self.member_id, self.instance_id)

    def commit(self, offsets: list[TopicPartition], timeout_s: float = 30.0) -> None:
        """Commit with this member's generation; refused (``KafkaException``) during a rebalance or
        after this member left the group, as librdkafka's commit is."""
        coordinator = self._consumer._coordinator
        future = asyncio.run_coroutine_threadsafe(coordinator.commit_offsets(None, self._aio_offsets(offsets)),
                                                  self._loop)
        try:
            future.result(timeout_s)
        except FutureTimeout as exc:
            future.cancel()
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out")) from exc
        except Exception as exc:
            raise KafkaException(_as_kafka_error(exc)) from exc

    def commit_async(self, offsets: list[TopicPartition], answered: Callable[[KafkaError | None], None]) -> None:
        """Send a commit without waiting; ``answered(error or None)`` is called from the membership's
        thread once the broker answered."""
        future = asyncio.run_coroutine_threadsafe(
            self._consumer._coordinator.commit_offsets(None, self._aio_offsets(offsets)), self._loop)

        def done(f: Any) -> None:
            exc = f.exception() if not f.cancelled() else None
            answered(None if exc is None and not f.cancelled() else _as_kafka_error(exc))

        future.add_done_callback(done)

    @staticmethod
    def _aio_offsets(offsets: list[TopicPartition]) -> dict[Any, Any]:
        from aiokafka.structs import OffsetAndMetadata, TopicPartition as AioTopicPartition

        return {AioTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(tp.offset, tp.metadata or "")
                for tp in offsets}

    def rejoin(self) -> None:
        """Ask for another round of the group protocol (after handing tasks over; a probe)."""
        if self._loop is not None and self._consumer is not None:
            self._loop.call_soon_threadsafe(self._consumer._coordinator.request_rejoin)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
            self._failure = exc
            self._started.set()
            log.error("group membership failed: %s", exc)

    def _assignor(self) -> Any:
        from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

        member = self

        class StreamletAssignor(AbstractPartitionAssignor):
            name = "streamlet"
            version = 0

            @classmethod
            def metadata(cls, topics: Any) -> Any:
                return ConsumerProtocolMemberMetadata(0, sorted(topics), member._metadata())

            @classmethod
            def assign(cls, cluster: Any, members: Any) -> Any:
                out = member._assign({m: md.user_data for m, md in members.items()})
                if member._leader_delay_s:
                    # librdkafka's mock broker refuses a follower's SyncGroup that comes after the leader's
                    time.sleep(member._leader_delay_s)
                return {m: ConsumerProtocolMemberAssignment(0, [], data) for m, data in out.items()}

            @classmethod
            def on_assignment(cls, assignment: Any) -> None:
                member._pending = assignment.user_data

        return StreamletAssignor

    async def _main(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        member = self
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._pending: bytes | None = None

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                # tasks keep running through a rebalance (the assignment says what moves), unless the
                # group dropped this member: then its tasks may be given to others in this round
                if member._consumer._coordinator.generation < 0 and member.generation >= 0:
                    log.warning("this worker was dropped from group %s (generation %d): its tasks are lost",
                                member.group, member.generation)
                    member.generation = -1
                    member._on_lost()

            def on_partitions_assigned(self, assigned: Any) -> None:
                coordinator = member._consumer._coordinator
                member.generation, member.member_id = coordinator.generation, coordinator.member_id
                data, member._pending = member._pending, None
                member._on_assignment(member.generation, member.member_id, data or b"")

        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self.group, group_instance_id=self.instance_id,
            enable_auto_commit=False, partition_assignment_strategy=(self._assignor(),),
            session_timeout_ms=self._session_ms, heartbeat_interval_ms=self._heartbeat_ms,
            max_poll_interval_ms=int(self._max_poll_s * 1000), rebalance_timeout_ms=int(self._max_poll_s * 1000),
            client_id=f"{self.group}-member")
        await consumer.start()
        try:
            consumer.subscribe([self._topic], listener=Listener())
            self._started.set()
            while not self._stop.is_set():
                if time.monotonic() - self._polled < self._max_poll_s:
                    await consumer.getmany(timeout_ms=500)  # keeps aiokafka's poll interval fresh
                else:
                    await asyncio.sleep(0.5)  # the loop is stuck: aiokafka leaves after the interval
        finally:
            await consumer.stop()  # a static member sends no LeaveGroup (aiokafka, as librdkafka)
