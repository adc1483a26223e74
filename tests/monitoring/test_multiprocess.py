"""The web's counters under gunicorn's several workers (prometheus_client
multiprocess mode, gunicorn.conf.py): the Procfile's web line with 2 real
workers; N requests, spread over both, and /metrics says N whichever worker
answers the scrape."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.private_services import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _procfile_web_line() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.partition(":")[2].strip()
    raise AssertionError("no web line in the Procfile")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _requests_counted(base: str) -> float:
    status, text = _get(f"{base}/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "feed_api_requests":
            total += sum(
                s.value
                for s in family.samples
                if s.name == "feed_api_requests_total" and s.labels["endpoint"] == "unmatched"
            )
    return total


@pytest.fixture
def gunicorn(tmp_path: Path):
    port = free_port()
    multiproc = tmp_path / "prometheus"
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "2",
        "WEB_THREADS": "2",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    # the access log names the worker (pid) of each request
    command = f"exec {_procfile_web_line()} --access-logformat {shlex.quote('%(p)s %(U)s')}"
    with open(access_log, "wb") as out, open(tmp_path / "gunicorn.log", "wb") as err:
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not come up in 60 s"
            time.sleep(0.2)
        yield base, access_log, multiproc
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _workers_that_served(access_log: Path) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^<(\d+)> /api/v1/no-such-route/", access_log.read_text(), re.M)}


def test_two_gunicorn_workers_count_every_request_once(gunicorn) -> None:
    base, access_log, multiproc = gunicorn
    assert _requests_counted(base) == 0
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        # batches of concurrent requests until both workers served some (gunicorn does not round-robin)
        while len(_workers_that_served(access_log)) < 2:
            statuses = list(pool.map(lambda _: _get(f"{base}/api/v1/no-such-route/")[0], range(50)))
            assert statuses == [404] * 50
            sent += 50
            assert sent <= 2000, "2,000 requests and only one worker served them"
            time.sleep(0.2)  # the access log is written after the response
    assert len({p.stem.rsplit("_", 1)[1] for p in multiproc.glob("counter_*.db")}) >= 2
    # any worker answers a scrape; each must see both workers' requests
    for _ in range(6):
        assert _requests_counted(base) == sent
