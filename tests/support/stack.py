"""The whole system as its users run it, for the end-to-end tests.

Every service private (infra/local/services.sh with its own var/ directory and
free loopback ports: Postgres, Redis, ClickHouse, the Kafka-protocol broker), the
product's own settings module (`nova.settings`, DEBUG off), the set-up of `make
run` (migrate, migrate_clickhouse, ensure_topics) and every process of the
Procfile started from its own line, as real processes. The tests then drive it
through the HTTP API and the Kafka topics only, and may stop, freeze or kill any
piece without disturbing the shared services or another test session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.private_services import PrivateServer, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90.0


def procfile() -> dict[str, str]:
    """The Procfile's processes: name -> command line."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_]+):\s*(.+)$", line)
        if match:
            processes[match.group(1)] = match.group(2)
    return processes


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    reason = f": {last_error!r}" if last_error else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{reason}")


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Process:
    name: str
    command: str
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n----- start {self.starts}\n".encode())
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.popen is not None
        self.popen.wait(10)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]


@dataclass
class Stack:
    workdir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    servers: dict[str, PrivateServer] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = 0

    # ------------------------------------------------------------ lifecycle
    def up(self) -> None:
        var_dir = self.workdir / "var"
        for service in ("postgres", "redis", "clickhouse", "kafka"):
            server = PrivateServer(service, var_dir)
            self.servers[service] = server
        # one var dir, so every server gets every port variable
        ports = {k: v for server in self.servers.values() for k, v in server.env.items() if k.startswith("NOVA_")}
        for server in self.servers.values():
            server.env.update(ports)
        for server in self.servers.values():
            server.up()
        self.web_port = free_port()
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                (
                    "NOVA_",
                    "DJANGO_",
                    "CLICKHOUSE_",
                    "KAFKA_",
                    "REDIS_",
                    "CELERY_",
                    "DATABASE_",
                    "PYTEST",
                    "EVENTS_",
                    "FEED_",
                    "CDC_",
                )
            )
        }
        self.env = {
            **inherited,
            **ports,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "nova.settings",
            "DJANGO_SECRET_KEY": "e2e-only-secret-key-not-for-production-use-0123456789",
            "DJANGO_DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
            "WEB_BIND": f"127.0.0.1:{self.web_port}",
            "WEB_WORKERS": "2",
            "CELERY_CONCURRENCY": "1",
            "CELERY_BEAT_SCHEDULE_FILE": str(self.workdir / "celerybeat-schedule"),
            "EVENTS_CONSUMER_METRICS_PORT": str(free_port()),
            "CDC_CONSUMER_METRICS_PORT": str(free_port()),
            "CDC_RELAY_METRICS_PORT": str(free_port()),
            "CELERY_WORKER_METRICS_PORT": str(free_port()),
            "CELERY_BEAT_METRICS_PORT": str(free_port()),
            "CELERY_WORKER_PROMETHEUS_DIR": str(self.workdir / "prometheus-worker"),
            **self.overrides,
        }
        for step in (["migrate", "--noinput"], ["migrate_clickhouse"], ["ensure_topics"]):
            self.manage(*step)
        for name, command in procfile().items():
            process = Process(name, command, self.env, self.workdir / f"{name}.log")
            self.processes[name] = process
            process.start()
        wait_for(lambda: self.request("GET", "/healthz").status == 200, START_TIMEOUT_SECONDS, "web /healthz")
        for name, process in self.processes.items():
            if not process.alive():
                raise AssertionError(f"{name} exited at start:\n{process.log()}")

    def down(self) -> None:
        for process in self.processes.values():
            process.stop()
        for server in self.servers.values():
            try:
                server.down()
            except AssertionError:
                pass

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            timeout=timeout,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    # ------------------------------------------------------------ clients
    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None, timeout: float = 10.0
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw, status, headers = answer.read(), answer.status, dict(answer.headers)
        except urllib.error.HTTPError as error:
            raw, status, headers = error.read(), error.code, dict(error.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(status, parsed, headers)

    def register(self, username: str) -> tuple[int, str]:
        answer = self.request(
            "POST", "/api/v1/auth/register/", body={"username": username, "password": f"{username}-long-password-42"}
        )
        assert answer.status == 201, answer
        return int(answer.body["user"]["id"]), str(answer.body["token"])

    def clickhouse(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        from clickhouse_driver import Client

        client = Client(
            host="127.0.0.1",
            port=self.servers["clickhouse"].port,
            database="nova",
            connect_timeout=2,
            send_receive_timeout=10,
        )
        try:
            return list(client.execute(query, params or {}))
        finally:
            client.disconnect()

    def redis(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.servers["redis"].port, socket_timeout=5)

    def event_counts(self, event_ids: list[str]) -> dict[str, int]:
        """Rows per event id in `events` (before any merge: a duplicate insert shows)."""
        rows = self.clickhouse(
            "SELECT toString(event_id), count() FROM events WHERE toString(event_id) IN %(ids)s GROUP BY event_id",
            {"ids": tuple(event_ids)},
        )
        return {str(event_id): int(count) for event_id, count in rows}

    def metrics(self, port_variable: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.env[port_variable]}/metrics", timeout=5) as answer:
            return answer.read().decode()

    def logs(self) -> str:
        return "\n".join(f"===== {name}\n{process.log(1500)}" for name, process in self.processes.items())
