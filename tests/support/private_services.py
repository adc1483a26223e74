"""A private server (Redis, ClickHouse, Postgres, the broker) for a test that must stop, freeze or
restart one: infra/local/services.sh (the same script `make` uses) with its own
var/ directory and free loopback ports, so the shared servers and any other
test session are never disturbed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "infra" / "local" / "services.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    def __init__(self, service: str, var_dir: Path) -> None:
        self.service = service
        self.env = {**os.environ, "NOVA_VAR_DIR": str(var_dir)}
        self.port = free_port()
        if service == "clickhouse":
            self.env.update(NOVA_CH_TCP_PORT=str(self.port), NOVA_CH_HTTP_PORT=str(free_port()))
            self.pid_file = var_dir / "clickhouse" / "clickhouse.pid"
        elif service == "redis":
            self.env.update(NOVA_REDIS_PORT=str(self.port))
            self.pid_file = var_dir / "redis" / "redis.pid"
        elif service == "postgres":
            self.env.update(NOVA_PG_PORT=str(self.port))
            self.pid_file = var_dir / "postgres" / "data" / "postmaster.pid"
        elif service == "kafka":
            self.env.update(NOVA_KAFKA_PORT=str(self.port))
            self.pid_file = var_dir / "kafka" / "tansu.pid"
        else:
            raise ValueError(f"no private {service}")

    def run(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SERVICES), action, self.service], env=self.env, timeout=90, capture_output=True, text=True
        )

    def up(self) -> None:
        result = self.run("up")
        assert result.returncode == 0, result.stderr

    def down(self) -> None:
        result = self.run("down")
        assert result.returncode == 0, result.stderr

    def signal(self, sig: signal.Signals) -> None:
        # postmaster.pid has the pid on its first line, the other pid files only the pid
        os.kill(int(self.pid_file.read_text().split()[0]), sig)
