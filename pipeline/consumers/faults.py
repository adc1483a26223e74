"""TEST-ONLY fault injection and negative controls for the consumers, in one object.

Everything is off by default; only the fault-injection tests turn a switch on,
through the consumer commands' `--test-*` flags. A negative control makes a
guarantee fail on purpose, so a test can show that its harness would notice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrashPoint:
    """TEST-ONLY fault injection: SIGKILL this process at `point` of the `batch`-th batch.

    "after-dedup": the marks are set, the insert has not happened (a replay
    must not take its own marks for client retries); "after-insert": the rows
    are in ClickHouse, the offsets are not committed (a replay must not insert
    them twice). A real crash can land in either gap; this lands there on purpose.
    """

    point: str
    batch: int

    POINTS = ("after-dedup", "after-insert")

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        point, _, batch = text.partition(":")
        if point not in cls.POINTS or not batch.isdigit() or int(batch) < 1:
            raise ValueError(f"crash point {text!r}: expected one of {', '.join(cls.POINTS)} followed by :N (N >= 1)")
        return cls(point, int(batch))


@dataclass(frozen=True)
class Faults:
    """What to break. `commit_before_write` (runner): commit offsets before the
    write, which loses the batch if the process dies in between; `no_sink_seek`
    (events): do not start past the offsets ClickHouse holds, so a crash after an
    insert inserts twice; `no_mark_identity` (events): dedup marks do not name
    their message, so a replay takes its own marks for client retries and loses
    them; `crash_at` (events): SIGKILL the process at a point of the pipeline."""

    commit_before_write: bool = False
    no_sink_seek: bool = False
    no_mark_identity: bool = False
    crash_at: CrashPoint | None = None


NONE = Faults()
