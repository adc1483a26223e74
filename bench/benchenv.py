"""What every benchmark starts from: the process environment plus the checkout's
`.env` (the same NOVA_*_PORT values `make` reads), Django's production settings
module and a throwaway secret. Each benchmark then adds its own namespace. Also
the small helpers the benchmarks share: the Procfile's lines, free ports, the
machine, commit and load average a result is recorded with."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
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


def procfile_line(name: str) -> str:
    """The Procfile's command for process `name` (run it with `bash -c 'exec <line>'`, as supervisord does)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip()
    raise SystemExit(f"no {name} line in the Procfile")


def venv_path() -> str:
    """PATH with this interpreter's bin/ first, so a Procfile line finds gunicorn, celery and python."""
    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_avg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def commit() -> str:
    """The checkout's commit, marked when tracked files are modified."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return f"{out}{' (modified)' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    return (
        f"{os.cpu_count()} cores, {total_kib / 1024**2:.0f} GiB, Debian {debian}, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
