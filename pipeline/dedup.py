"""Client-retry removal by event_id: one Redis mark per event, set once.

The mark's value names the message that set it (`generation:partition:offset`),
which is what makes "mark, then insert" safe: when a batch is replayed after a
crash (its marks set, its insert lost), each message finds its *own* mark and is
inserted again, while a client retry (another message, same event_id) finds a
mark naming some other message and is dropped. One Lua call per batch answers
for every id, in one round trip (docs/architecture/events.md).
"""

from __future__ import annotations

import uuid
from enum import IntEnum

import redis

# SET NX GET (Redis >= 7.0): sets the mark if absent and returns the previous
# value, so "new / same message / other message" costs one command per key.
# The marks travel as one space-separated argument and the verdicts come back
# as one string of digits: packing 10,000 arguments and parsing 10,000 replies
# cost the client more than the script costs Redis.
_CLASSIFY_LUA = """
local ttl = ARGV[1]
local out = {}
local i = 0
for mark in string.gmatch(ARGV[2], '[^ ]+') do
    i = i + 1
    local previous = redis.call('SET', KEYS[i], mark, 'NX', 'GET', 'EX', ttl)
    if not previous then
        out[i] = '0'
    elseif previous == mark then
        out[i] = '1'
    else
        out[i] = '2'
    end
end
return table.concat(out)
"""


class Seen(IntEnum):
    NEW = 0  # first time: insert
    REPLAY = 1  # the same message again (crash/rebalance replay): insert again
    RETRY = 2  # another message with this event_id (client retry): drop


_VERDICTS = {ord("0"): Seen.NEW, ord("1"): Seen.REPLAY, ord("2"): Seen.RETRY}


def dedup_key(prefix: str, event_id_hex: str) -> str:
    """One key per event: the UUID's 32 hex digits (`UUID.hex`, cheaper than str())."""
    return f"{prefix}:dedup:event:{event_id_hex}"


def message_mark(generation: int, partition: int, offset: int) -> str:
    return f"{generation}:{partition}:{offset}"


class EventDedup:
    """Domain layer: keys, TTL and the meaning of a mark, over a lazy Redis client.

    `mark_identity=False` is a TEST-ONLY negative control: a mark no longer
    names its message (each one is a fresh nonce), which is plain `SET NX`:
    a replayed message finds "someone else's" mark and is dropped like a
    client retry, so a crash between marking and inserting loses the batch.
    """

    def __init__(self, redis_url: str, key_prefix: str, ttl_seconds: int, *,
                 socket_timeout: float = 5.0, mark_identity: bool = True) -> None:
        if ttl_seconds < 24 * 3600:
            raise ValueError(f"dedup TTL must be at least 24 h, got {ttl_seconds}s")
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        self.socket_timeout = socket_timeout
        self.mark_identity = mark_identity
        self._client: redis.Redis | None = None
        self._script = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout
            )
            self._script = self._client.register_script(_CLASSIFY_LUA)
        return self._client

    def classify(self, event_ids: list[str], marks: list[str]) -> list[Seen]:
        """Mark every event id (hex) if unmarked and say, per id, what the message is.

        Marks must not contain spaces (`message_mark` never does).
        """
        if not event_ids:
            return []
        client = self.client
        assert self._script is not None
        if not self.mark_identity:
            nonce = uuid.uuid4().hex
            marks = [f"{nonce}:{i}" for i in range(len(marks))]
        prefix = dedup_key(self.key_prefix, "")
        keys = [prefix + event_id for event_id in event_ids]
        answer = self._script(keys=keys, args=[self.ttl_seconds, " ".join(marks)], client=client)
        if len(answer) != len(keys):
            raise RuntimeError(f"dedup script answered {len(answer)} verdicts for {len(keys)} events")
        return [_VERDICTS[digit] for digit in answer]
