"""librdkafka's Kafka-protocol mock cluster, driven through ctypes.

The confluent-kafka wheel bundles librdkafka, which contains a complete
Kafka wire-protocol broker meant for testing (``rdkafka_mock.h``). Real
clients — in this process or in others — talk to it over loopback exactly as
they would to Kafka. It has no CreateTopics API, so topics are created here
through the C API.

    >>> with MockCluster(brokers=1) as cluster:
    ...     cluster.create_topic("orders", 4)
    ...     print(cluster.bootstrap_servers)
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from typing import Iterable

from streamlet.errors import EmbeddedBrokerError

# ApiKey numbers of the Kafka protocol, for request-error injection.
API_KEYS = {
    "Produce": 0,
    "Fetch": 1,
    "ListOffsets": 2,
    "Metadata": 3,
    "OffsetCommit": 8,
    "OffsetFetch": 9,
    "FindCoordinator": 10,
    "JoinGroup": 11,
    "Heartbeat": 12,
    "LeaveGroup": 13,
    "SyncGroup": 14,
    "InitProducerId": 22,
}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def find_librdkafka() -> str:
    """Path of the librdkafka shared library bundled with confluent-kafka."""
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise EmbeddedBrokerError(
            "confluent-kafka is not installed; `pip install streamlet` installs it"
        ) from exc
    pkg_dir = os.path.dirname(confluent_kafka.__file__)
    site = os.path.dirname(pkg_dir)
    patterns = [
        os.path.join(site, "confluent_kafka.libs", "librdkafka*.so*"),
        os.path.join(pkg_dir, ".dylibs", "librdkafka*.dylib"),
        os.path.join(pkg_dir, "librdkafka*"),
    ]
    override = os.environ.get("STREAMLET_LIBRDKAFKA")
    if override:
        return override
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise EmbeddedBrokerError(
        "could not find the librdkafka library bundled with confluent-kafka "
        f"(looked for {', '.join(patterns)}). Install the binary wheel "
        "(`pip install --force-reinstall confluent-kafka`), set "
        "STREAMLET_LIBRDKAFKA to the library's path, or use a real Kafka "
        "cluster with brokers='host:9092'."
    )


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = find_librdkafka()
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise EmbeddedBrokerError(f"could not load librdkafka from {path}: {exc}") from exc
        vp, cp, ci, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int32
        sigs = {
            "rd_kafka_conf_new": ([], vp),
            "rd_kafka_conf_set": ([vp, cp, cp, cp, ctypes.c_size_t], ci),
            "rd_kafka_new": ([ci, vp, cp, ctypes.c_size_t], vp),
            "rd_kafka_destroy": ([vp], None),
            "rd_kafka_mock_cluster_new": ([vp, ci], vp),
            "rd_kafka_mock_cluster_destroy": ([vp], None),
            "rd_kafka_mock_cluster_bootstraps": ([vp], cp),
            "rd_kafka_mock_topic_create": ([vp, cp, ci, ci], ci),
            "rd_kafka_mock_broker_set_down": ([vp, i32], ci),
            "rd_kafka_mock_broker_set_up": ([vp, i32], ci),
            "rd_kafka_mock_broker_set_rtt": ([vp, i32, ci], ci),
            "rd_kafka_mock_push_request_errors_array": ([vp, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ci)], None),
            "rd_kafka_mock_clear_request_errors": ([vp, ctypes.c_int16], None),
            "rd_kafka_mock_group_initial_rebalance_delay_ms": ([vp, i32], None),
            "rd_kafka_err2str": ([ci], cp),
        }
        for name, (args, res) in sigs.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as exc:
                raise EmbeddedBrokerError(
                    f"{path} has no {name}; streamlet needs the librdkafka bundled with "
                    "confluent-kafka >= 2.4"
                ) from exc
            fn.argtypes = args
            fn.restype = res
        _lib = lib
        return lib


class MockCluster:
    """An in-process Kafka-protocol broker cluster (librdkafka mock).

    It lives as long as this object and this process: other processes reach
    it through :attr:`bootstrap_servers` while it runs. It keeps only about
    5 MiB per partition; ``watch`` (default) logs an error whenever it drops
    records (:mod:`streamlet.broker.watch`).
    """

    def __init__(self, brokers: int = 1, initial_rebalance_delay_ms: int = 0, watch: bool = True) -> None:
        lib = _load()
        self._lib = lib
        conf = lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        # A producer handle hosts the mock cluster's threads; it never sends.
        for key, value in (("client.id", "streamlet-embedded-broker"), ("log_level", "3")):
            lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), errstr, len(errstr))
        rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))
        if not rk:
            raise EmbeddedBrokerError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._rk = rk
        mc = lib.rd_kafka_mock_cluster_new(rk, int(brokers))
        if not mc:
            lib.rd_kafka_destroy(rk)
            raise EmbeddedBrokerError("rd_kafka_mock_cluster_new failed")
        self._mc = mc
        self.broker_count = int(brokers)
        self.bootstrap_servers: str = lib.rd_kafka_mock_cluster_bootstraps(mc).decode()
        self._topics: dict[str, int] = {}
        self._lock = threading.Lock()
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(mc, int(initial_rebalance_delay_ms))
        self._watch = None
        if watch:  # it drops records past its cap without a word: say so (streamlet.broker.watch)
            from streamlet.broker.watch import DroppedRecordsWatch

            self._watch = DroppedRecordsWatch(self.bootstrap_servers).start()

    @property
    def dropped(self) -> dict[str, int]:
        """Records the broker has dropped so far, per topic (seen about once a second)."""
        return dict(self._watch.dropped) if self._watch is not None else {}

    # -- topics -------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, replication_factor: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions (no-op if it exists with that count)."""
        self._check_open()
        with self._lock:
            if name in self._topics:
                return
            err = self._lib.rd_kafka_mock_topic_create(
                self._mc, name.encode(), int(partitions), int(replication_factor)
            )
            if err:
                raise EmbeddedBrokerError(
                    f"could not create topic {name!r} on the embedded broker: {self._err(err)}"
                )
            self._topics[name] = int(partitions)

    def create_topics(self, topics: dict[str, int] | Iterable[tuple[str, int]]) -> None:
        items = topics.items() if isinstance(topics, dict) else topics
        for name, partitions in items:
            self.create_topic(name, partitions)

    @property
    def topics(self) -> dict[str, int]:
        """Topics created through this object (name -> partition count)."""
        with self._lock:
            return dict(self._topics)

    # -- fault injection ----------------------------------------------------
    def broker_down(self, broker_id: int = 1) -> None:
        """Take a broker down: its connections close and new ones are refused."""
        self._check_open()
        self._lib.rd_kafka_mock_broker_set_down(self._mc, int(broker_id))

    def broker_up(self, broker_id: int = 1) -> None:
        self._check_open()
        self._lib.rd_kafka_mock_broker_set_up(self._mc, int(broker_id))

    def set_rtt(self, broker_id: int, rtt_ms: int) -> None:
        """Delay every response of ``broker_id`` by ``rtt_ms``."""
        self._check_open()
        self._lib.rd_kafka_mock_broker_set_rtt(self._mc, int(broker_id), int(rtt_ms))

    def push_request_errors(self, api: str | int, errors: list[int]) -> None:
        """Make the next ``len(errors)`` requests of ``api`` fail with these error codes."""
        self._check_open()
        key = API_KEYS[api] if isinstance(api, str) else int(api)
        arr = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(self._mc, key, len(errors), arr)

    def clear_request_errors(self, api: str | int) -> None:
        self._check_open()
        key = API_KEYS[api] if isinstance(api, str) else int(api)
        self._lib.rd_kafka_mock_clear_request_errors(self._mc, key)

    # -- lifecycle ----------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_watch", None) is not None:
            self._watch.stop()  # before the cluster it talks to goes
            self._watch = None
        if self._mc:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
            self._mc = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None

    def _check_open(self) -> None:
        if not self._mc:
            raise EmbeddedBrokerError("the embedded broker is closed")

    def _err(self, code: int) -> str:
        return f"{self._lib.rd_kafka_err2str(code).decode()} (error {code})"

    def __enter__(self) -> "MockCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
