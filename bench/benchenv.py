"""What every benchmark starts from: the process environment plus the checkout's
`.env` (the same NOVA_*_PORT values `make` reads), Django's production settings
module and a throwaway secret. Each benchmark then adds its own namespace."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parents[1]


def bench_env(**namespace: str) -> dict[str, str]:
    env = dict(os.environ)
    dotenv = ROOT / ".env"
    if dotenv.exists():
        for line in dotenv.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env.setdefault(key.strip(), value.strip())
    env.update(
        DJANGO_SETTINGS_MODULE="nova.settings",
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or "bench-only-secret",
        PYTHONUNBUFFERED="1",
        **namespace,
    )
    return env


def postgres(dbname: str) -> psycopg.Connection[Any]:
    """An autocommit connection to `dbname` on the Postgres server of Django's settings (after django.setup())."""
    import psycopg
    from django.conf import settings

    db: Mapping[str, Any] = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        password=db.get("PASSWORD") or None,
        dbname=dbname,
        autocommit=True,
    )


def scalar(conn: psycopg.Connection[Any], query: LiteralString, params: tuple[object, ...] = ()) -> Any:
    """The first column of the first row `query` returns (it must return one)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]
