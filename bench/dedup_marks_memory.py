"""Memory a day of dedup marks costs: write 100,000 marks as the events consumer
does (pipeline/dedup.py, one Lua call per 10,000), read `used_memory` before and
after, extrapolate per million events.

Run it against an otherwise idle Redis (other writers add noise), e.g. a
throwaway server: `redis-server --port 56399 --save '' &` then
`DJANGO_SECRET_KEY=x .venv/bin/python bench/dedup_marks_memory.py redis://127.0.0.1:56399/1`.
The marks it wrote are deleted at the end.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.dedup import EventDedup, dedup_key, message_mark

MARKS = 100_000
CHUNK = 10_000
TTL = 8 * 24 * 3600 + 300  # the default mark lifetime (nova/settings.py)


def main(url: str) -> None:
    prefix = f"novamem{uuid.uuid4().hex[:6]}"
    dedup = EventDedup(url, prefix, TTL)
    client = dedup.client
    rng = random.Random(1)
    before = client.info("memory")["used_memory"]
    events = [(rng.randrange(10**6, 10**7), uuid.uuid4().hex) for _ in range(MARKS)]
    for start in range(0, MARKS, CHUNK):
        chunk = events[start : start + CHUNK]
        dedup.classify(chunk, [message_mark(0, rng.randrange(12), 10**8 + start + i) for i in range(len(chunk))])
    after = client.info("memory")["used_memory"]
    per_mark = (after - before) / MARKS
    print(
        f"{MARKS:,} marks: used_memory {before:,} -> {after:,} bytes, {per_mark:.0f} B per mark, "
        f"{per_mark * 10**6 / 2**20:.0f} MiB per million events"
    )
    for start in range(0, MARKS, CHUNK):
        client.unlink(*(dedup_key(prefix, user, event) for user, event in events[start : start + CHUNK]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:56379/1")
