"""Retention of ClickHouse `events`: drop whole monthly partitions older than the cutoff.

ClickHouse 18.16 has no TTL. `events` is partitioned by `toYYYYMM(ts)`, so its
partition ids are 'YYYYMM'; a month is dropped once every moment of it is older
than `now - retention`. Only whole months go: the month holding the cutoff stays
until its last day is old enough (so up to a month more than the retention is
kept). Dropping a partition that is already gone is a no-op, so a run repeated or
retried does nothing more. The materialized views' tables (post_engagement_hourly,
user_author_affinity_daily) keep their own rows: they are small and are not
touched here. settings.py refuses a retention shorter than EVENTS_MAX_AGE_SECONDS,
so no accepted event can land in a month already dropped.

On a cluster (docs/operations/scaling.md) the months are those of `events_local`
on every server, and a month is dropped ON CLUSTER: each shard drops it, and
replication drops it on the shard's other replicas.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)

_MONTH_ID = re.compile(r"^(\d{4})(\d{2})$")

ACTIVE_PARTITIONS_SQL = (
    "SELECT DISTINCT partition_id FROM system.parts "
    "WHERE active AND database = currentDatabase() AND table = %(table)s ORDER BY partition_id"
)
# the table name is a constant of this module; the partition id is bound by the driver
DROP_PARTITION_SQL = "ALTER TABLE events DROP PARTITION ID %(partition_id)s"
# on a cluster: the parts of every server, and the drop on every server (names quoted here, values bound)
CLUSTER_PARTITIONS_SQL = (
    "SELECT DISTINCT partition_id FROM cluster(%(cluster)s, system.parts) "
    "WHERE active AND database = %(database)s AND table = 'events_local' ORDER BY partition_id"
)
CLUSTER_DROP_PARTITION_SQL = (
    "ALTER TABLE `{database}`.events_local ON CLUSTER `{cluster}` DROP PARTITION ID %(partition_id)s"
)


class ClickHouseRunner(Protocol):
    def execute(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


def month_end(partition_id: str) -> datetime | None:
    """'202401' -> 2024-02-01 00:00 UTC, the first moment after the month; None
    for an id that is not a month (never drop what we cannot read)."""
    match = _MONTH_ID.match(partition_id)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def partitions_to_drop(partition_ids: Iterable[str], cutoff: datetime) -> list[str]:
    """The month partitions whose every row is older than `cutoff` (aware), oldest first."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    old = set()
    for partition_id in partition_ids:
        end = month_end(partition_id)
        if end is not None and end <= cutoff:
            old.add(partition_id)
    return sorted(old)


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    if retention_days < 1:
        raise ValueError(f"retention must be at least one day, got {retention_days}")
    return now - timedelta(days=retention_days)


def active_partition_ids(client: ClickHouseRunner, table: str = "events") -> list[str]:
    return [partition_id for (partition_id,) in client.execute(ACTIVE_PARTITIONS_SQL, {"table": table})]


def enforce_events_retention(
    client: ClickHouseRunner, now: datetime, retention_days: int, cluster: str = "", database: str = ""
) -> list[str]:
    """Drop the months of `events` older than the retention; returns the dropped partition ids.
    `cluster` (with the client's `database`): the cluster the database was migrated for."""
    if cluster:
        partitions = [p for (p,) in client.execute(CLUSTER_PARTITIONS_SQL, {"cluster": cluster, "database": database})]
        drop_sql = CLUSTER_DROP_PARTITION_SQL.format(database=database, cluster=cluster)
    else:
        partitions, drop_sql = active_partition_ids(client), DROP_PARTITION_SQL
    dropped = partitions_to_drop(partitions, retention_cutoff(now, retention_days))
    for partition_id in dropped:
        client.execute(drop_sql, {"partition_id": partition_id})
        log.info("events: dropped partition %s (retention %d days)", partition_id, retention_days)
    return dropped
