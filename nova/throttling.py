"""Rate limits kept in Redis: fixed windows, one round trip per check, failing open.

A limit is a counter per (name, identity) that lives for one window: the first
hit creates it with the window as its TTL, every hit adds its cost, and a count
over the limit answers "wait for the TTL". Redis is reached through
nova/redis.py's client, so while Redis is down (or frozen) requests are let
through at once, logged and counted in `api_throttle_fail_open_total`, instead
of failing: a rate limit is not worth an outage of the API.

Who is asking: the user for signed-in requests, the client address otherwise
(`client_address`: REMOTE_ADDR, or the address API_NUM_PROXIES trusted proxies
put in X-Forwarded-For; a client-supplied header is never trusted on its own).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from monitoring import metrics
from nova import redis as nova_redis

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

log = logging.getLogger(__name__)

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'10/15min', '6000/min', '5/s', '20/hour': a count per (a number of) units."""
        match = _RATE.match(text.lower())
        if not match or match[3] not in _UNITS:
            raise ValueError(f"rate {text!r}: expected <count>/[<n>]<unit>, unit one of {sorted(_UNITS)}")
        return cls(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])


def rate_of(name: str) -> Rate:
    return Rate.parse(settings.API_THROTTLE_RATES[name])


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, unless API_NUM_PROXIES proxies we run append to X-Forwarded-For:
    then the address the outermost of them saw (DRF's NUM_PROXIES rule)."""
    proxies = settings.API_NUM_PROXIES
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")


def _failed_open(name: str, exc: BaseException | None) -> None:
    metrics.API_THROTTLE_FAIL_OPEN.labels(name).inc()
    if exc is not None:
        log.warning("redis unavailable, %s limit not enforced: %s", name, exc)
        nova_redis.mark_down()


def hit(name: str, ident: str, rate: Rate, cost: int = 1) -> int | None:
    """Count `cost` against ident's window: None if within the limit, else the seconds to wait."""
    client = nova_redis.client()
    if client is None:
        _failed_open(name, None)
        return None
    key = nova_redis.key("throttle", name, ident)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=rate.window, nx=True)
            pipe.incrby(key, cost)
            pipe.ttl(key)
            _, count, ttl = pipe.execute()
    except nova_redis.REDIS_ERRORS as exc:
        _failed_open(name, exc)
        return None
    return max(int(ttl), 1) if count > rate.limit else None


def wait_for(limits: list[tuple[str, str]]) -> int | None:
    """Without counting: the longest wait among (name, ident) limits already reached, or None."""
    client = nova_redis.client()
    if client is None:
        _failed_open(limits[0][0], None)
        return None
    keys = [nova_redis.key("throttle", name, ident) for name, ident in limits]
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            replies = pipe.execute()
    except nova_redis.REDIS_ERRORS as exc:
        _failed_open(limits[0][0], exc)
        return None
    waits = [
        max(int(ttl), 1)
        for (name, _), count, ttl in zip(limits, replies[::2], replies[1::2], strict=True)
        if count is not None and int(count) >= rate_of(name).limit
    ]
    return max(waits, default=None)


class _Throttle(BaseThrottle):
    """A DRF throttle over `hit`; DRF turns a refusal into 429 with Retry-After."""

    scope = ""

    def __init__(self) -> None:
        self.wait_seconds: int | None = None

    def identity(self, request: Request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        ident = self.identity(request)
        if ident is not None:
            self.wait_seconds = hit(self.scope, ident, rate_of(self.scope))
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


class UserThrottle(_Throttle):
    """The read (and write) budget of a signed-in user."""

    scope = "user"

    def identity(self, request: Request) -> str | None:
        return str(request.user.pk) if request.user and request.user.is_authenticated else None


class AnonThrottle(_Throttle):
    """Anonymous requests, per client address."""

    scope = "anon"

    def identity(self, request: Request) -> str | None:
        return None if request.user and request.user.is_authenticated else client_address(request)


# --- sign-in and registration: failures per username and per client address
def _auth_limits(request: HttpRequest, username: object) -> list[tuple[str, str]]:
    limits = [("auth_address", client_address(request))]
    if isinstance(username, str) and username:
        limits.append(("auth_username", username.casefold()))
    return limits


def auth_wait(request: HttpRequest, username: object) -> int | None:
    """Seconds until this username or address may try again, or None."""
    return wait_for(_auth_limits(request, username))


def record_auth_failure(request: HttpRequest, username: object) -> None:
    for name, ident in _auth_limits(request, username):
        hit(name, ident, rate_of(name))
