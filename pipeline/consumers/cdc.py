"""The CDC consumer's handler: Debezium change events -> ClickHouse replica tables.

decode() is pure (pipeline/cdc/replica.py): a message it cannot read, or one for
a table we do not replicate, is an InvalidMessage and goes to nova.dlq.cdc.
write() inserts each table's rows in one INSERT; a truncate first writes the rows
before it, records itself in `cdc_truncations`, then marks the table's older rows
deleted. After each write, rows it inserted that a recorded truncate covers (an
older change that was still in another partition) are marked deleted too. Writes
are idempotent (ReplacingMergeTree by _version), so a batch replayed after a
crash is harmless. A row ClickHouse refuses for what it holds raises
RowsRejected: the runner finds it by halving the batch and dead-letters it (a
replay of the halves is harmless for the same reason).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from clickhouse_driver import Client

from monitoring import metrics
from nova.clickhouse import is_data_error
from pipeline.cdc.replica import (
    RECORD_TRUNCATION_SQL,
    TRUNCATIONS_SQL,
    Change,
    InvalidChange,
    RowChange,
    covered_by_truncate,
    insert_sql,
    parse_change,
    truncate_sql,
)
from pipeline.consumers.framework import InvalidMessage, RowsRejected


class CdcHandler:
    def __init__(self, client: Client) -> None:
        self.client = client

    def decode(self, message: Any) -> Change | None:
        try:
            return parse_change(message.value(), message.topic())
        except InvalidChange as exc:
            metrics.CDC_DLQ_MESSAGES.labels(exc.reason).inc()
            raise InvalidMessage(str(exc)) from None

    def write(self, items: list[Change | None]) -> None:
        started = time.monotonic()
        pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        changes: list[RowChange] = []
        for item in items:
            if item is None:
                continue  # tombstone: the delete before it already marked the row
            if isinstance(item, RowChange):
                pending[item.table].append(item.values)
                changes.append(item)
            else:
                self._insert(item.table, pending.pop(item.table, []))
                # recorded before the rows are marked: a member that inserts an older
                # change of this table after the marking reads this record afterwards
                self.client.execute(RECORD_TRUNCATION_SQL, [(item.table, item.version)])
                self.client.execute(truncate_sql(item.table), {"version": item.version})
                metrics.CDC_MESSAGES_PROCESSED.labels(item.table).inc()
        for table, rows in pending.items():
            self._insert(table, rows)
        if changes:
            self._delete_truncated(changes)
        metrics.CDC_PROCESSING_DURATION.observe(time.monotonic() - started)

    def _delete_truncated(self, changes: list[RowChange]) -> None:
        """Mark deleted the inserted rows that a truncate, applied before them, covers."""
        truncations = dict(self.client.execute(TRUNCATIONS_SQL))
        deletions: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for change in covered_by_truncate(changes, truncations):
            deletions[change.table].append(change.deleted_by_truncate(truncations[change.table]).values)
        for table, rows in deletions.items():
            self.client.execute(insert_sql(table), rows)

    def _insert(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        try:
            self.client.execute(insert_sql(table), rows)
        except Exception as exc:
            if is_data_error(exc):
                raise RowsRejected(str(exc)) from exc  # the runner isolates and dead-letters the refused rows
            raise
        metrics.CDC_MESSAGES_PROCESSED.labels(table).inc(len(rows))


def build_cdc_handler() -> CdcHandler:
    from django.conf import settings

    from nova.clickhouse import make_client

    return CdcHandler(make_client(settings.CLICKHOUSE))
