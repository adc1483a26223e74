"""URL converters: an id in a path is a Postgres bigint or the route does not match."""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1


class BigIntIdConverter:
    # at most 19 digits; the range check below catches 9223372036854775808..9999999999999999999
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= BIGINT_MAX:
            # ValueError makes Django treat the route as unmatched: a 404, never a DataError 500
            raise ValueError(f"id {value} is out of range")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
