"""Writes on the replicated cluster (nova_replicated: one shard, replicas ch1 and
ch2), through the Distributed `events` as the consumers write: replication, a
replica killed and restarted, and ClickHouse's block deduplication of a retried
insert in `events` and in the materialized views' tables."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.event_schema import ROW_COLUMNS
from tests.cluster.conftest import REPLICATED
from tests.pipeline.cdc.conftest import wait_until

pytestmark = pytest.mark.requires_cluster

# the consumer's columns plus _inserted_at: a retry must send the identical block,
# and a DEFAULT now() filled in by the server would differ from one second to the next
INSERT_SQL = f"INSERT INTO events ({', '.join(ROW_COLUMNS)}, _inserted_at) VALUES"
TYPES = ["impression", "impression", "view", "click", "like", "comment", "share", "hide", "dwell"]
INTERACTIONS = {"click", "like", "comment", "share", "dwell"}
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).replace(tzinfo=None)


def event_block(first_offset: int, size: int = 1000) -> list[tuple]:
    rows = []
    for i in range(size):
        offset = first_offset + i
        ts = START + timedelta(seconds=offset)
        rows.append(
            (
                uuid.uuid5(uuid.NAMESPACE_OID, f"event-{offset}"),
                1 + offset % 20,
                100 + offset % 50,
                1 + offset % 7,
                TYPES[offset % len(TYPES)],
                ts,
                ts,
                int(ts.timestamp() * 1000),
                250 if TYPES[offset % len(TYPES)] == "dwell" else 0,
                offset % 10,
                "feed",
                "events",
                0,
                offset,
                0,
                ts,
            )
        )
    return rows


def expected(blocks: list[list[tuple]]) -> tuple:
    rows = [row for block in blocks for row in block]
    types = [row[4] for row in rows]
    return (
        len(rows),
        types.count("impression"),
        types.count("click"),
        types.count("like"),
        sum(row[8] for row in rows),
        sum(t in INTERACTIONS for t in types),
        max(row[13] for row in rows),
    )


def local_totals_are(client, want: object) -> Callable[[], bool]:
    """For wait_until: whether `client`'s server holds `want` in its own (_local) tables."""
    return lambda: totals(client, "_local") == want


def totals(client, suffix: str = "") -> tuple:
    """Rows of `events` (no FINAL: a duplicate would show) and the views' sums;
    suffix "_local": this server's replica only."""
    [(count,)] = client.execute(f"SELECT count() FROM events{suffix}")
    [(impressions, clicks, likes, dwell_ms)] = client.execute(
        f"SELECT sum(impressions), sum(clicks), sum(likes), sum(dwell_ms_total) FROM post_engagement_hourly{suffix}"
    )
    [(interactions,)] = client.execute(f"SELECT sum(interactions) FROM user_author_affinity_daily{suffix}")
    [(max_offset,)] = client.execute(f"SELECT maxMerge(max_offset) FROM events_sink_offsets{suffix}")
    return count, impressions, clicks, likes, dwell_ms, interactions, max_offset


def test_replicas_copy_inserts_and_a_killed_replica_catches_up(local_cluster, cluster_db) -> None:
    database = cluster_db(REPLICATED)
    ch1 = local_cluster.client("ch1", REPLICATED, database)
    first, second = event_block(0), event_block(1000)

    ch1.execute(INSERT_SQL, first)
    ch2 = local_cluster.client("ch2", REPLICATED, database)
    wait_until(lambda: totals(ch2, "_local") == expected([first]), 30, message="ch2 never got ch1's insert")

    local_cluster.kill("ch2")
    ch1.execute(INSERT_SQL, second)  # the Distributed insert goes to the live replica
    assert totals(ch1) == expected([first, second])  # and Distributed reads go on
    assert totals(ch1, "_local") == expected([first, second])

    local_cluster.run("up", "ch2")
    ch2 = local_cluster.client("ch2", REPLICATED, database)
    wait_until(
        lambda: totals(ch2, "_local") == expected([first, second]), 60, message="the restarted replica did not catch up"
    )
    assert totals(ch2) == expected([first, second])


def test_an_identical_block_inserted_again_is_counted_once(local_cluster, cluster_db) -> None:
    database = cluster_db(REPLICATED)
    block = event_block(0)
    for server in ("ch1", "ch2", "ch1"):  # a retry may reach either replica
        local_cluster.client(server, REPLICATED, database).execute(INSERT_SQL, block)
    for server in ("ch1", "ch2"):
        client = local_cluster.client(server, REPLICATED, database)
        # each table replicates on its own: wait for all of them, then nothing more may come
        wait_until(
            local_totals_are(client, expected([block])),
            30,
            message=f"{server}: {totals(client)}",
        )
        time.sleep(1)
        assert totals(client, "_local") == expected([block])
        assert totals(client) == expected([block])


def test_an_insert_retried_after_a_frozen_server_is_counted_once(local_cluster, cluster_db) -> None:
    """The outcome of the first insert is unknown to the writer (its server froze
    mid-insert and the client timed out); the writer retries the identical block."""
    database = cluster_db(REPLICATED)
    block, later = event_block(0), event_block(1000, size=10)
    impatient = local_cluster.client("ch1", REPLICATED, database, timeout=2)
    local_cluster.signal("ch1", signal.SIGSTOP)
    try:
        with pytest.raises(Exception):  # noqa: B017 - any error is "outcome unknown"
            impatient.execute(INSERT_SQL, block)
    finally:
        local_cluster.signal("ch1", signal.SIGCONT)
    impatient.disconnect()

    ch1 = local_cluster.client("ch1", REPLICATED, database)
    wait_until(lambda: _succeeds(lambda: ch1.execute(INSERT_SQL, block)), 30, message="the retry never succeeded")
    ch1.execute(INSERT_SQL, later)  # the writer moves on
    for server in ("ch1", "ch2"):
        client = local_cluster.client(server, REPLICATED, database)
        wait_until(
            local_totals_are(client, expected([block, later])),
            30,
            message=f"{server}: {totals(client, '_local')}",
        )
        time.sleep(1)
        assert totals(client, "_local") == expected([block, later])


def _succeeds(insert) -> bool:
    try:
        insert()
        return True
    except Exception:
        return False
