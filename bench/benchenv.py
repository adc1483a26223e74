"""What every benchmark starts from: the process environment plus the checkout's
`.env` (the same NOVA_*_PORT values `make` reads), Django's production settings
module and a throwaway secret. Each benchmark then adds its own namespace."""

from __future__ import annotations

import os
from pathlib import Path

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
