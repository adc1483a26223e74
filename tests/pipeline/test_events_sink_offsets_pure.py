"""The pure parts of the events consumer's offsets-in-the-sink seek and the
insert deduplication token (pipeline/consumers/events.py). `start_position`
is tested beside the consumer."""

from __future__ import annotations

import pytest

from pipeline.consumers.events import insert_token, latest_sink_offsets
from pipeline.event_schema import ROW_COLUMNS


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], {}),
        ([(0, 0, 41)], {0: (0, 41)}),
        ([(0, 0, 41), (1, 0, 7)], {0: (0, 41), 1: (0, 7)}),
        # a newer generation wins even with a lower offset (topic recreated)
        ([(0, 0, 900), (0, 1, 3)], {0: (1, 3)}),
        ([(0, 1, 3), (0, 0, 900)], {0: (1, 3)}),
        ([(2, 0, 5), (2, 2, 1), (2, 1, 99)], {2: (2, 1)}),
    ],
)
def test_latest_sink_offsets(rows, expected) -> None:
    assert latest_sink_offsets(rows) == expected


def row(partition: int, offset: int, generation: int = 0) -> tuple:
    values = dict.fromkeys(ROW_COLUMNS, 0)
    values.update(_partition=partition, _offset=offset, _generation=generation)
    return tuple(values[name] for name in ROW_COLUMNS)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([row(0, 5)], "t|g0p0:5-5"),
        ([row(0, 7), row(0, 5), row(0, 6)], "t|g0p0:5-7"),
        ([row(1, 3), row(0, 9), row(1, 2)], "t|g0p0:9-9;g0p1:2-3"),
        ([row(0, 3, 1), row(0, 3, 0)], "t|g0p0:3-3;g1p0:3-3"),
    ],
)
def test_insert_token(rows, expected) -> None:
    assert insert_token("t", rows) == expected


def test_insert_token_ignores_row_order_but_not_ranges() -> None:
    rows = [row(0, n) for n in range(10)]
    assert insert_token("t", rows) == insert_token("t", list(reversed(rows)))
    assert insert_token("t", rows) != insert_token("t", rows[1:])
    assert insert_token("t", rows) != insert_token("u", rows)
