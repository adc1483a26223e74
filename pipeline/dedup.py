"""Client-retry removal by (user_id, event_id): one Redis mark per event, set once.

The mark's value names the message that set it (`generation:partition:offset`),
which is what makes "mark, then insert" safe: when a batch is replayed after a
crash (its marks set, its insert lost), each message finds its *own* mark and is
inserted again, while a client retry (another message, same event_id) finds a
mark naming some other message and is dropped. One Lua call per batch answers
for every id, in one round trip (docs/architecture/events.md).

A mark must outlive every retry the API can still accept (`mark_ttl_seconds`)
and must never be evicted: the marks live in their own Redis database
(`EVENTS_DEDUP_REDIS_URL`, so a cache flush cannot drop them) on a server whose
`maxmemory-policy` is `noeviction`, which `EventDedup` checks before its first
mark. A full server then refuses new marks (the consumer retries the batch and
waits) rather than dropping old ones (which would count a retry twice).
"""

from __future__ import annotations

import logging
import uuid
from enum import IntEnum

import redis
from redis.commands.core import Script

logger = logging.getLogger(__name__)

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


def dedup_key(prefix: str, user_id: int, event_id_hex: str) -> str:
    """One key per (user, event): the same event_id sent by another user is another event.

    The UUID as its 32 hex digits (`UUID.hex`, cheaper than str()).
    """
    return f"{prefix}:dedup:event:{user_id}:{event_id_hex}"


def mark_ttl_seconds(max_age_seconds: int, max_future_skew_seconds: int, margin_seconds: int) -> int:
    """How long a mark must live so that no retry the API accepts finds it gone.

    The API accepts an event whose ts is at most `max_future_skew` ahead of its
    arrival, and a retry of it until `max_age` after ts: a retry reaches the
    consumer up to max_age + max_future_skew after the first copy, plus how far
    the consumer lags behind, which `margin` covers.
    """
    return max_age_seconds + max_future_skew_seconds + margin_seconds


class DedupStoreEvicts(RuntimeError):
    """The marks' Redis server may evict keys: a lost mark counts a retry twice."""


def message_mark(generation: int, partition: int, offset: int) -> str:
    return f"{generation}:{partition}:{offset}"


class EventDedup:
    """Domain layer: keys, TTL and the meaning of a mark, over a lazy Redis client.

    `mark_identity=False` is a TEST-ONLY negative control: a mark no longer
    names its message (each one is a fresh nonce), which is plain `SET NX`:
    a replayed message finds "someone else's" mark and is dropped like a
    client retry, so a crash between marking and inserting loses the batch.
    """

    def __init__(
        self,
        redis_url: str,
        key_prefix: str,
        ttl_seconds: int,
        *,
        socket_timeout: float = 5.0,
        mark_identity: bool = True,
    ) -> None:
        if ttl_seconds < 24 * 3600:
            raise ValueError(f"dedup TTL must be at least 24 h, got {ttl_seconds}s")
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        self.socket_timeout = socket_timeout
        self.mark_identity = mark_identity
        self._client: redis.Redis | None = None
        self._script: Script | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            client = redis.Redis.from_url(
                self.redis_url, socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout
            )
            check_no_eviction(client)
            self._script = client.register_script(_CLASSIFY_LUA)
            self._client = client
        return self._client

    def classify(self, events: list[tuple[int, str]], marks: list[str]) -> list[Seen]:
        """Mark every (user_id, event id hex) if unmarked and say, per event, what the message is.

        Marks must not contain spaces (`message_mark` never does).
        """
        if not events:
            return []
        client = self.client
        assert self._script is not None
        if not self.mark_identity:
            nonce = uuid.uuid4().hex
            marks = [f"{nonce}:{i}" for i in range(len(marks))]
        keys = [dedup_key(self.key_prefix, user_id, event_id) for user_id, event_id in events]
        answer = self._script(keys=keys, args=[self.ttl_seconds, " ".join(marks)], client=client)
        if len(answer) != len(keys):
            raise RuntimeError(f"dedup script answered {len(answer)} verdicts for {len(keys)} events")
        return [_VERDICTS[digit] for digit in answer]


def check_no_eviction(client: redis.Redis) -> None:
    """Refuse a server that may evict marks (any `maxmemory-policy` but `noeviction`).

    A server that hides CONFIG (some managed offers) cannot be checked: that is
    logged, and its policy is the operator's to set (docs/architecture/events.md).
    """
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError as exc:
        logger.warning("dedup: cannot read the marks' server maxmemory-policy (%s); it must be noeviction", exc)
        return
    if policy != "noeviction":
        raise DedupStoreEvicts(
            f"the dedup marks' Redis server has maxmemory-policy {policy!r}: it may evict a mark and count a "
            "client retry twice; give EVENTS_DEDUP_REDIS_URL a server with maxmemory-policy noeviction"
        )
