"""Which monthly partitions of `events` the retention drops (pure), and the drop on ClickHouse 18.16."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.retention import (
    active_partition_ids,
    enforce_events_retention,
    month_end,
    partitions_to_drop,
    retention_cutoff,
)
from ranking.world import WEvent, World, write_world

UTC = UTC


@pytest.mark.parametrize(
    ("partition_id", "end"),
    [
        ("202401", datetime(2024, 2, 1, tzinfo=UTC)),
        ("202411", datetime(2024, 12, 1, tzinfo=UTC)),
        ("202412", datetime(2025, 1, 1, tzinfo=UTC)),  # December ends in the next year
        ("202402", datetime(2024, 3, 1, tzinfo=UTC)),  # leap February
        ("202400", None),
        ("202413", None),
        ("2024", None),
        ("20240101", None),
        ("all", None),
        ("", None),
    ],
)
def test_month_end(partition_id: str, end: datetime | None) -> None:
    assert month_end(partition_id) == end


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [
        # a month goes once its last moment is older than the cutoff
        (datetime(2024, 3, 1, tzinfo=UTC), ["202401", "202402"]),
        (datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), ["202401"]),  # one second short of February's end
        (datetime(2024, 2, 1, tzinfo=UTC), ["202401"]),  # exactly January's end
        (datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), []),
        (datetime(2025, 1, 1, tzinfo=UTC), ["202401", "202402", "202403", "202412"]),  # across the year
        (datetime(2023, 6, 1, tzinfo=UTC), []),
    ],
)
def test_partitions_to_drop(cutoff: datetime, expected: list[str]) -> None:
    partitions = ["202403", "202401", "202412", "202402", "tuple()", "202401"]
    assert partitions_to_drop(partitions, cutoff) == expected


def test_cutoff_is_now_minus_the_retention() -> None:
    now = datetime(2024, 5, 31, 12, tzinfo=UTC)
    assert retention_cutoff(now, 90) == datetime(2024, 3, 2, 12, tzinfo=UTC)
    # 90 days from the end of May: everything before March goes, March stays
    assert partitions_to_drop(["202402", "202403", "202405"], retention_cutoff(now, 90)) == ["202402"]
    with pytest.raises(ValueError):
        retention_cutoff(now, 0)
    with pytest.raises(ValueError):
        partitions_to_drop(["202401"], datetime(2024, 5, 1))  # naive on purpose


@pytest.mark.requires_clickhouse
def test_enforce_drops_only_old_months_and_is_idempotent(world_db) -> None:
    now = datetime(2024, 5, 31, 12, tzinfo=UTC)
    stamps = [
        datetime(2024, 1, 10, tzinfo=UTC),
        datetime(2024, 2, 29, 23, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
        now - timedelta(hours=1),
    ]
    write_world(world_db, World(events=[WEvent(1, 10, 2, "click", ts) for ts in stamps]))
    assert active_partition_ids(world_db) == ["202401", "202402", "202403", "202405"]

    assert enforce_events_retention(world_db, now, 90) == ["202401", "202402"]
    assert active_partition_ids(world_db) == ["202403", "202405"]
    assert world_db.execute("SELECT count() FROM events") == [(2,)]
    assert enforce_events_retention(world_db, now, 90) == []
