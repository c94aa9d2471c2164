"""partition_for is Java's default partitioner: Kafka's own murmur2 test vectors (UtilsTest)."""

from __future__ import annotations

import pytest

from services.common.partitioning import partition_for

JAVA_MURMUR2 = {  # key → Utils.murmur2(key) as Java's signed int
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
@pytest.mark.parametrize("partitions", [1, 6, 7, 100])
def test_the_partition_is_javas(key: str, java: int, partitions: int) -> None:
    assert partition_for(key.encode(), partitions) == (java & 0x7FFFFFFF) % partitions


def test_no_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        partition_for(b"k", 0)
