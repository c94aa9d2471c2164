"""Which partition a record key belongs on: Kafka's Java default partitioner (murmur2).

carealert keeps each child's state on one partition, the partition Java's default partitioner
(`Utils.toPositive(Utils.murmur2(key)) % partitions`) gives the key `{agency_id}:{child_id}`.
Ingest produces that way. A producer that partitions otherwise (librdkafka clients default to
CRC32) puts a child's records elsewhere; the rules worker forwards each such record to the
partition the key belongs on (services.rules.worker), so per-child state never depends on the
producer. kafka-python's murmur2 is the same function as Java's, byte for byte.
"""

from __future__ import annotations

from functools import lru_cache

from kafka.partitioner.default import murmur2


@lru_cache(maxsize=16384)
def _positive_murmur2(key: bytes) -> int:
    """kafka-python's murmur2 is pure Python (about 10 µs a key); a child's key comes again
    with each of its events, so the recent ones are remembered (at most ~10 MB)."""
    return int(murmur2(key) & 0x7FFFFFFF)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner picks for `key` among `partitions`."""
    if partitions < 1:
        raise ValueError("partitions must be positive")
    return _positive_murmur2(key) % partitions
