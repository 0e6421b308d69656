"""Kafka's default partitioner (murmur2 of the key bytes), as the Java client computes it.

The runtime's producer uses librdkafka's ``murmur2_random``, which gives the
same partition; this copy lets the TestDriver and users' ``partitioner=``
functions agree with it without a broker.
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """32-bit murmur2 hash with Kafka's seed, as a signed int (like the Java client)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    nblocks = length // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = data[4 * nblocks:]
    extra = len(tail)
    if extra == 3:
        h ^= tail[2] << 16
    if extra >= 2:
        h ^= tail[1] << 8
    if extra >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Partition of ``key`` among ``partitions``: ``toPositive(murmur2(key)) % partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
