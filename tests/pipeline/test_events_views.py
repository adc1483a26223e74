"""The events materialized views on the real ClickHouse: each view's SELECT
produces exactly its target table's columns (name and type, in order), and a
row inserted into `events` reaches every aggregate with the right values."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, date, datetime

import pytest
from django.conf import settings

from pipeline.consumers.events import INSERT_SQL
from pipeline.event_schema import ROW_COLUMNS

pytestmark = pytest.mark.requires_clickhouse

VIEWS_DIR = settings.CLICKHOUSE_SQL_DIR / "views"
_MV = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+(SELECT.*)", re.S)


def _view_files() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(VIEWS_DIR.glob("*.sql")):
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
        if match := _MV.search(text):
            found.append((match[1], match[2], match[3].strip().rstrip(";")))
    return found


VIEWS = _view_files()


def _columns(clickhouse, database: str, table: str) -> list[tuple[str, str]]:
    # 18.16's system.columns has no `position`; DESCRIBE keeps declaration order
    return [(row[0], row[1]) for row in clickhouse.execute(f"DESCRIBE TABLE `{database}`.`{table}`")]


def test_every_materialized_view_in_the_database_is_covered(clickhouse, clickhouse_db) -> None:
    rows = clickhouse.execute(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine = 'MaterializedView'", {"db": clickhouse_db}
    )
    assert sorted(name for (name,) in rows) == sorted(view for view, _, _ in VIEWS)
    assert {"post_engagement_hourly_mv", "user_author_affinity_daily_mv"} <= {view for view, _, _ in VIEWS}


@pytest.mark.parametrize(("view", "target", "select"), VIEWS, ids=[view for view, _, _ in VIEWS])
def test_view_output_matches_its_target_column_by_column(clickhouse, clickhouse_db, view, target, select) -> None:
    target_columns = _columns(clickhouse, clickhouse_db, target)
    # the view's own columns, as the server derived them from its SELECT ...
    assert _columns(clickhouse, clickhouse_db, view) == target_columns
    # ... and the SELECT of the file run as a query (DESCRIBE (SELECT ...) is not on 18.16)
    _rows, header = clickhouse.execute(f"{select} LIMIT 0", with_column_types=True)
    assert [(name, type_) for name, type_ in header] == target_columns


def _row(**values) -> tuple:
    base = {
        "event_id": str(uuid.uuid4()),
        "user_id": 0,
        "post_id": 0,
        "author_id": 0,
        "event_type": "impression",
        "ts": 0,
        "received_at": 0,
        "received_at_ms": 0,
        "dwell_ms": 0,
        "position": -1,
        "surface": "",
        "_topic": "views-test",
        "_partition": 0,
        "_offset": 0,
        "_generation": 0,
    }
    base.update(values)
    # INSERT_SQL also names _inserted_at, which the consumer fixes per batch
    return (*(base[name] for name in ROW_COLUMNS), int(time.time()))


def test_inserted_events_reach_every_aggregate(clickhouse, clickhouse_db) -> None:
    # ids no other test uses: the aggregates are shared by the session's database
    post, author, user = 9_000_000 + uuid.uuid4().int % 1_000_000, 8_000_001, 7_000_000 + uuid.uuid4().int % 1_000_000
    t0 = int(datetime(2026, 11, 23, 10, 15, tzinfo=UTC).timestamp())
    t1 = int(datetime(2026, 11, 23, 11, 5, tzinfo=UTC).timestamp())
    kinds = ["impression", "impression", "view", "click", "like", "comment", "share", "hide", "dwell"]
    rows = [
        _row(
            user_id=user,
            post_id=post,
            author_id=author,
            event_type=kind,
            ts=t0 if i < 5 else t1,
            dwell_ms=1200 if kind == "dwell" else 0,
            _offset=i,
        )
        for i, kind in enumerate(kinds)
    ]
    rows.append(_row(user_id=user, post_id=post, author_id=0, event_type="like", ts=t1, _offset=99))  # unknown author
    clickhouse.execute(INSERT_SQL, rows)

    hourly = clickhouse.execute(
        "SELECT author_id, hour, sum(impressions), sum(views), sum(clicks), sum(likes), sum(comments), sum(shares), "
        "sum(hides), sum(dwell_events), sum(dwell_ms_total) FROM post_engagement_hourly WHERE post_id = %(post)s "
        "GROUP BY author_id, hour ORDER BY author_id, hour",
        {"post": post},
    )
    h10, h11 = datetime(2026, 11, 23, 10, 0), datetime(2026, 11, 23, 11, 0)
    assert [(a, h.replace(tzinfo=None), *counts) for a, h, *counts in hourly] == [
        (0, h11, 0, 0, 0, 1, 0, 0, 0, 0, 0),
        (author, h10, 2, 1, 1, 1, 0, 0, 0, 0, 0),
        (author, h11, 0, 0, 0, 0, 1, 1, 1, 1, 1200),
    ]

    affinity = clickhouse.execute(
        "SELECT author_id, day, sum(interactions), sum(clicks), sum(likes), sum(comments), sum(shares), sum(hides), "
        "sum(dwell_ms_total) FROM user_author_affinity_daily WHERE user_id = %(user)s GROUP BY author_id, day",
        {"user": user},
    )
    # click, like, comment, share, dwell interact; impressions, views and hides do not; author 0 is not kept
    assert affinity == [(author, date(2026, 11, 23), 5, 1, 1, 1, 1, 1, 1200)]

    offsets = clickhouse.execute(
        "SELECT partition, generation, maxMerge(max_offset) FROM events_sink_offsets WHERE topic = 'views-test' "
        "GROUP BY partition, generation"
    )
    assert (0, 0, 99) in offsets
